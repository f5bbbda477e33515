package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/pusher"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

const secondWorkspace = "7b3c5d9e-1f20-4a6b-8c4d-0e2f4a6c8e00"

// sinks returns one Client per simulator workspace, all with the same Entra identity and so
// sharing one quota.
func sinks(t testing.TB, sim *simsentinel.Server) []*Client {
	t.Helper()
	var out []*Client
	for _, ws := range []string{simsentinel.DefaultWorkspaceID, secondWorkspace} {
		cfg := simConfig(sim)
		cfg.WorkspaceID = ws
		cfg.QuotaMinute = sim.Minute()
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		out = append(out, c)
	}
	return out
}

type delivered struct {
	rejected map[int]string // global index -> message
	err      error
}

// backlog is objects queued in batches of 100 in an in-memory store, batch k for sink
// k % sinks, as the daemon's diff would queue them.
type backlog struct {
	store *store.Store
	index map[string]int // object id -> position in objects
}

func queueBacklog(t testing.TB, objects []json.RawMessage, sinks int) backlog {
	t.Helper()
	st, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bl := backlog{store: st, index: make(map[string]int, len(objects))}
	now := time.Now()
	for k, start := 0, 0; start < len(objects); k, start = k+1, start+100 {
		var objs []stix.Object
		for i := start; i < min(start+100, len(objects)); i++ {
			var v struct{ ID string }
			if err := json.Unmarshal(objects[i], &v); err != nil {
				t.Fatal(err)
			}
			bl.index[v.ID] = i
			objs = append(objs, stix.Object{ID: v.ID, Type: "indicator", EventUUID: fmt.Sprint(k), Hash: v.ID, Body: objects[i]})
		}
		if _, err := st.Apply(fmt.Sprint("ws", k%sinks), fmt.Sprint("event-", k), objs, now); err != nil {
			t.Fatal(err)
		}
	}
	return bl
}

// deliver drains the backlog through one pusher per client, all sharing one set of pacers
// (one identity), and returns the rejections by index into the queued objects.
func (bl backlog) deliver(ctx context.Context, t testing.TB, clients []*Client, cfg pusher.Config, headroom float64, m *pusher.Metrics) delivered {
	t.Helper()
	pacers, err := pusher.NewPacers(headroom)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	var (
		mu  sync.Mutex
		out = delivered{rejected: make(map[int]string)}
		wg  sync.WaitGroup
	)
	for i, c := range clients {
		cfg := cfg
		cfg.Sink = fmt.Sprint("ws", i)
		p, err := pusher.New(cfg, bl.store, c, pacers, log, m)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			_, err := p.Drain(ctx)
			dead, derr := bl.store.DeadLetters(cfg.Sink, 0)
			mu.Lock()
			defer mu.Unlock()
			if err = errors.Join(err, derr); err != nil && out.err == nil {
				out.err = err
			}
			for _, d := range dead {
				out.rejected[bl.index[d.ID]] = d.Message
			}
		})
	}
	wg.Wait()
	return out
}

// pusherConfig is the daemon's default delivery loop configuration with a faster backoff.
func pusherConfig() pusher.Config {
	return pusher.Config{Linger: time.Second, ShutdownGrace: 10 * time.Second, RetryInitial: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxRetryAfter: 10 * time.Minute, InFlight: 4, FailingInitial: time.Minute, FailingMax: time.Minute}
}

// TestTenThousandIndicatorsThroughFaults is the delivery acceptance test: 10,000 indicators
// through a simulator answering 10 % of uploads 500, dropping 2 % of connections and
// throwing a 429 storm mid-way. Every valid indicator must be stored, none skipped, and
// every invalid one reported with Sentinel's message.
func TestTenThousandIndicatorsThroughFaults(t *testing.T) {
	sim := startSim(t, simsentinel.Options{
		TimeScale:  60, // a quota minute lasts one second
		Workspaces: []simsentinel.Workspace{{ID: simsentinel.DefaultWorkspaceID}, {ID: secondWorkspace}},
		Faults:     simsentinel.Faults{ServerErrorRate: 0.10, DropRate: 0.02},
	})
	clients := sinks(t, sim)

	const n = 10_000
	now := time.Now()
	objects := make([]json.RawMessage, n)
	wantRejected := make(map[int]string)
	for i := range objects {
		switch i % 250 {
		case 7:
			objects[i] = testIndicator(i, now, func(o map[string]any) { delete(o, "pattern") })
			wantRejected[i] = "Error for Property=pattern: Required property is missing. Actual value: NULL."
		case 123:
			objects[i] = testIndicator(i, now, func(o map[string]any) { o["valid_until"] = stixTime(now.Add(-time.Hour)) })
			wantRejected[i] = "Error for Property=valid_until: valid_until must be greater than valid_from."
		default:
			objects[i] = testIndicator(i, now, nil)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed assertion
	defer cancel()
	stormed := make(chan struct{})
	go func() {
		defer close(stormed)
		for sim.Stats().Served < 30 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		sim.ThrottleUploads(4, 1500*time.Millisecond) // counted, not timed: the storm is seen however loaded the machine
	}()
	bl := queueBacklog(t, objects, len(clients))
	reg := prometheus.NewRegistry()
	got := bl.deliver(ctx, t, clients, pusherConfig(), 0.01, pusher.NewMetrics(reg))
	<-stormed
	if got.err != nil {
		t.Fatalf("deliver: %v", got.err)
	}

	for i, want := range wantRejected {
		if msg, ok := got.rejected[i]; !ok || !strings.Contains(msg, want) {
			t.Errorf("object %d: rejection %q, want %q", i, msg, want)
		}
	}
	for i, msg := range got.rejected {
		if _, ok := wantRejected[i]; !ok {
			t.Errorf("valid object %d rejected: %s", i, msg)
		}
	}
	stored := sim.Indicators(simsentinel.DefaultWorkspaceID, "MISP")
	for id, r := range sim.Indicators(secondWorkspace, "MISP") {
		stored[id] = r
	}
	for i, obj := range objects {
		_, bad := wantRejected[i]
		rec, ok := stored[testID(i)]
		switch {
		case bad && ok:
			t.Errorf("invalid object %d stored", i)
		case !bad && !ok:
			t.Errorf("object %d never stored", i)
		case !bad && !samePattern(rec.Object, obj):
			t.Errorf("object %d stored as %s", i, rec.Object)
		}
	}
	st := sim.Stats()
	retries := map[string]float64{}
	for _, reason := range []string{pusher.RetryThrottled, pusher.RetryServerError, pusher.RetryNetwork} {
		retries[reason] = retriesOf(t, reg, reason)
	}
	t.Logf("stored %d, rejected %d; simulator: %d requests, %d served, %d 500s, %d drops, %d 429s; retries by reason %v",
		len(stored), len(got.rejected), st.UploadRequests, st.Served, st.ServerErrors, st.Dropped, st.Throttled, retries)
	if len(stored) != n-len(wantRejected) {
		t.Errorf("%d stored, want %d", len(stored), n-len(wantRejected))
	}
	if st.ServerErrors == 0 || st.Dropped == 0 || st.Throttled == 0 || retries[pusher.RetryThrottled] == 0 || retries[pusher.RetryServerError] == 0 {
		t.Errorf("faults not exercised: %+v, retries %v", st, retries)
	}
}

func stixTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// samePattern reports whether two STIX objects have the same id and pattern (the store
// stamps modified, so the bodies differ).
func samePattern(a, b []byte) bool {
	var x, y struct{ ID, Pattern string }
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && x == y
}

// retriesOf reads listener_upload_retries_total summed over sinks for reason.
func retriesOf(t testing.TB, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "listener_upload_retries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
