package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/daemon"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/sim/lab"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// fakeReadBack is a workspace read-back that holds every indicator it is asked about.
type fakeReadBack struct{}

func (fakeReadBack) ReadIndicator(_ context.Context, id string) (daemon.HeldIndicator, bool, error) {
	return daemon.HeldIndicator{ID: id, Modified: time.Unix(1, 0).UTC()}, true, nil
}

// TestControlSocket runs a daemon against the simulators and asks it over its control socket
// what `status`, `deadletters` and `trace` ask: the socket is 0600, status and the dead
// letters (one queued to be rejected) come from the running daemon, a requeue goes through
// it, trace follows an event, an attribute value and an indicator id through MISP, the
// conversion and the store (and the read-back hook), and the socket is gone after a clean
// stop.
func TestControlSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the simulators: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	events := l.MISP.Generate(5, 4, 7)
	// A record Sentinel rejects, shared (as an identity is) so that no reconcile revokes it
	// meanwhile: its event is not in MISP.
	bad := lab.RejectedIndicator()
	bad.Shared = true
	st, err := store.Open(l.StoreDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply("primary", bad.EventUUID, []stix.Object{bad}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cfg, err := l.Config()
	if err != nil {
		t.Fatal(err)
	}
	d, stop := runDaemon(t, cfg, daemon.Options{ReadBack: func(sink string) daemon.ReadBack {
		if sink == "primary" {
			return fakeReadBack{}
		}
		return nil
	}})
	path := filepath.Join(l.StoreDir, "control.sock")
	if got := d.Addr("control"); got != path {
		t.Fatalf("control address = %q, want %q", got, path)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
		t.Fatalf("control socket = %v %v, want a 0600 socket", info, err)
	}
	ctx := context.Background()
	c := control.NewSocketClient(path, time.Minute)

	var dls []daemon.DeadLetter
	waitFor(t, time.Minute, "the rejected record's dead letter", func() (bool, string) {
		if err := c.Get(ctx, "/deadletters", nil, &dls); err != nil {
			return false, err.Error()
		}
		return len(dls) == 1, "dead letters: " + strings.Repeat("x", len(dls))
	})
	if dls[0].ID != bad.ID || !strings.Contains(dls[0].Message, "valid_until") {
		t.Errorf("dead letter = %+v", dls[0])
	}
	var status daemon.Status
	if err := c.Get(ctx, "/status", nil, &status); err != nil || len(status.Sinks) != 1 || status.Sinks[0].DeadLetters != 1 {
		t.Errorf("status over the socket = %+v %v", status, err)
	}
	// An unknown sink is a 400 naming the configured ones.
	if err := c.Get(ctx, "/deadletters", url.Values{"sink": {"nope"}}, &dls); err == nil || !strings.Contains(err.Error(), "no such sink") {
		t.Errorf("dead letters of an unknown sink: %v", err)
	}

	// The dead letter's trace: the store knows it, MISP does not know its event.
	var tr daemon.Trace
	if err := c.Get(ctx, "/trace", url.Values{"q": {bad.ID}}, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Kind != "indicator" || len(tr.Stored) != 1 || tr.Stored[0].Store.State != "dead letter" ||
		tr.Stored[0].Store.DeadLetter == nil || !strings.Contains(tr.Stored[0].Store.DeadLetter.Message, "valid_until") {
		t.Errorf("trace of the dead letter = %+v; store %+v", tr, tr.Stored)
		for _, s := range tr.Stored {
			t.Logf("stored: %+v", *s.Store)
		}
	}

	var requeued []daemon.Requeued
	if err := c.Post(ctx, "/deadletters/requeue", daemon.RequeueRequest{Sink: "primary"}, &requeued); err != nil || len(requeued) != 1 || requeued[0].Requeued != 1 {
		t.Errorf("requeue over the socket = %+v %v", requeued, err)
	}

	// An event: every attribute, each sink's decision, the store and the read-back.
	waitFor(t, time.Minute, "the events' indicators accepted", func() (bool, string) {
		if err := c.Get(ctx, "/trace", url.Values{"q": {events[0]}}, &tr); err != nil {
			return false, err.Error()
		}
		for _, a := range tr.Attributes {
			for _, s := range a.Sinks {
				for _, ind := range s.Indicators {
					if ind.Store.State == "accepted" {
						return true, ""
					}
				}
			}
		}
		return false, "no accepted indicator yet"
	})
	if tr.Kind != "event" || len(tr.Attributes) == 0 {
		t.Fatalf("trace of an event = %+v", tr)
	}
	var exported *daemon.TraceAttribute
	for i, a := range tr.Attributes {
		if !a.Event.InFilters || a.EventUUID != events[0] || len(a.Sinks) != 1 {
			t.Errorf("attribute %s: event %+v, sinks %+v", a.UUID, a.Event, a.Sinks)
		}
		s := a.Sinks[0]
		switch s.Decision {
		case "exported":
			if len(s.Indicators) == 0 || s.Indicators[0].Sentinel == nil {
				t.Errorf("exported attribute %s: indicators %+v, want the read-back's copy", a.UUID, s.Indicators)
			}
			if exported == nil && s.Indicators[0].Store.State == "accepted" {
				exported = &tr.Attributes[i]
			}
		case "skipped":
			if s.Reason == "" {
				t.Errorf("skipped attribute %s has no reason", a.UUID)
			}
		default:
			t.Errorf("attribute %s: decision %q", a.UUID, s.Decision)
		}
	}
	if exported == nil {
		t.Fatal("no exported, accepted attribute in the event's trace")
	}
	ind := exported.Sinks[0].Indicators[0]
	if ind.Store.Modified.IsZero() || ind.Store.AcceptedModified.IsZero() || ind.Store.ID == "" {
		t.Errorf("store view = %+v", ind.Store)
	}

	// The same attribute by value (MISP's attribute search) and by indicator id.
	for _, q := range []struct{ query, kind string }{{exported.Value, "value"}, {ind.ID, "indicator"}, {exported.UUID, "attribute"}} {
		if err := c.Get(ctx, "/trace", url.Values{"q": {q.query}}, &tr); err != nil {
			t.Fatalf("trace %s: %v", q.query, err)
		}
		found := false
		for _, a := range tr.Attributes {
			if a.UUID == exported.UUID && a.Sinks[0].Decision == "exported" && a.Sinks[0].Indicators[0].ID == ind.ID {
				found = true
			}
		}
		if tr.Kind != q.kind || !found {
			t.Errorf("trace %q = kind %s, %d attributes, want kind %s with attribute %s", q.query, tr.Kind, len(tr.Attributes), q.kind, exported.UUID)
		}
	}
	if err := c.Get(ctx, "/trace", url.Values{"q": {"no-such-value.example"}}, &tr); err != nil || len(tr.Attributes) != 0 || len(tr.Notes) == 0 {
		t.Errorf("trace of an unknown value = %+v %v", tr, err)
	}

	// Nothing mutates through a GET, and unknown routes are 404s.
	resp, err := (&http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}).Get("http://listener" + control.Prefix + "/deadletters/requeue")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET requeue = %d %s, want refused", resp.StatusCode, body)
	}

	stop()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the control socket outlives a clean stop: %v", err)
	}
}
