package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/sim/lab"
)

// TestSentinelAndDefenderSinksFromOneMISP runs one daemon with a Sentinel sink and a Defender
// sink, each with its own filters, fed from the same MISP and authenticated by the same Entra
// app: both must end with exactly what their filters and mappings yield, MDE must never refuse
// an indicator for the cap, and every MDE indicator must carry the configured action.
func TestSentinelAndDefenderSinksFromOneMISP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{
		Dir: t.TempDir(),
		Sinks: []lab.SinkSpec{
			{Name: "soc", ExtraYAML: "filters:\n  max_tlp: tlp:green\n"},
			{Name: "mde", Kind: "defender", ExtraYAML: "filters:\n  attribute_types: [ip-dst, ip-src, domain, hostname, url, md5, sha1, sha256]\n" +
				"defender:\n  action: Block\n  actions_by_type: {FileMd5: BlockAndRemediate, FileSha1: BlockAndRemediate, FileSha256: BlockAndRemediate}\n  read_back_interval: 1m\n"},
		},
		Linger: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.MISP.Generate(60, 8, 18)

	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	log, _ := recordingLogger(t, logrus.WarnLevel)
	d, stop := runDaemon(t, cfg, daemon.Options{Logger: log})
	defer stop()

	var states []lab.SinkState
	waitFor(t, 90*time.Second, "both sinks match MISP", func() (bool, string) {
		var err error
		if states, err = l.Compare(context.Background(), cfg, time.Now()); err != nil {
			return false, err.Error()
		}
		ok := states[0].Equal() && states[1].Equal() && states[0].Actual > 0 && states[1].Actual > 0
		return ok, fmt.Sprintf("%v; %v", states[0], states[1])
	})
	t.Logf("sentinel sink: %d indicators; defender sink: %d indicators", states[0].Actual, states[1].Actual)
	stats := l.Defender.Stats()
	t.Logf("defender simulator: %+v", stats)
	if stats.CapRefusals != 0 || stats.ItemFailures != 0 {
		t.Errorf("MDE refused indicators: %+v", stats)
	}
	for _, ind := range l.Defender.Indicators() {
		want := "Block"
		if ind.IndicatorType == "FileMd5" || ind.IndicatorType == "FileSha1" || ind.IndicatorType == "FileSha256" {
			want = "BlockAndRemediate"
		}
		if ind.Action != want {
			t.Errorf("%s %s has action %s, want %s", ind.IndicatorType, ind.IndicatorValue, ind.Action, want)
		}
	}

	// Status shows the tenant's budget, and where one indicator stands.
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	b := st.Sinks[1].Defender
	if b == nil || b.Held != states[1].Actual || b.InDefender != b.Held || b.Capacity != 14000 || st.Sinks[0].Defender != nil {
		t.Errorf("status of the defender sink: %+v", b)
	}
	held := l.Defender.Indicators()[0]
	standing := d.DefenderStanding(held.ExternalID)
	if len(standing) != 1 || !standing[0].Held || standing[0].DefenderID != held.ID {
		t.Errorf("standing of %s (%s): %+v", held.ExternalID, held.IndicatorValue, standing)
	}
	t.Logf("standing: %+v", standing)
}
