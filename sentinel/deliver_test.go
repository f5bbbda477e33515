package sentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

const secondWorkspace = "7b3c5d9e-1f20-4a6b-8c4d-0e2f4a6c8e00"

// sinks returns one Client per simulator workspace, all with the same Entra identity and so
// sharing one limiter from limiters.
func sinks(t testing.TB, sim *simsentinel.Server, limiters *Limiters) []*Client {
	t.Helper()
	var out []*Client
	for _, ws := range []string{simsentinel.DefaultWorkspaceID, secondWorkspace} {
		cfg := simConfig(sim)
		cfg.WorkspaceID = ws
		c, err := New(cfg, limiters)
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

// deliverBacklog splits objects into batches of 100 and delivers them with workers
// goroutines per sink, batch k going to sink k % len(sinks). It returns the rejections by
// index into objects.
func deliverBacklog(ctx context.Context, clients []*Client, objects []json.RawMessage, workersPerSink int, retry RetryOptions) delivered {
	type batch struct{ start, end int }
	queues := make([]chan batch, len(clients))
	for i := range queues {
		queues[i] = make(chan batch, len(objects)/100+1)
	}
	for k, start := 0, 0; start < len(objects); k, start = k+1, start+100 {
		queues[k%len(clients)] <- batch{start, min(start+100, len(objects))}
	}
	var (
		mu  sync.Mutex
		out = delivered{rejected: make(map[int]string)}
		wg  sync.WaitGroup
	)
	for i, c := range clients {
		close(queues[i])
		for range workersPerSink {
			wg.Go(func() {
				for b := range queues[i] {
					res, err := Deliver(ctx, c, objects[b.start:b.end], retry)
					mu.Lock()
					if err != nil && out.err == nil {
						out.err = err
					}
					for _, r := range res.Rejected {
						out.rejected[b.start+r.Index] = r.Message
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return out
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
	limiters := NewLimiters(LimiterOptions{Minute: sim.Minute()})
	clients := sinks(t, sim, limiters)

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
		sim.ThrottleStorm(1500 * time.Millisecond)
	}()
	var (
		retriesMu sync.Mutex
		retries   = map[string]int{}
	)
	got := deliverBacklog(ctx, clients, objects, 2, RetryOptions{
		InitialInterval: 5 * time.Millisecond, MaxInterval: 100 * time.Millisecond,
		Notify: func(err error, _ time.Duration) {
			var re *RetryableError
			if !errors.As(err, &re) {
				t.Errorf("Notify got %T %v, want *RetryableError", err, err)
				return
			}
			retriesMu.Lock()
			retries[fmt.Sprint(re.Status)]++
			retriesMu.Unlock()
		},
	})
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
		case !bad && string(rec.Object) != string(obj):
			t.Errorf("object %d stored as %s", i, rec.Object)
		}
	}
	st := sim.Stats()
	t.Logf("stored %d, rejected %d; simulator: %d requests, %d served, %d 500s, %d drops, %d 429s; client retries by status %v",
		len(stored), len(got.rejected), st.UploadRequests, st.Served, st.ServerErrors, st.Dropped, st.Throttled, retries)
	if len(stored) != n-len(wantRejected) {
		t.Errorf("%d stored, want %d", len(stored), n-len(wantRejected))
	}
	if st.ServerErrors == 0 || st.Dropped == 0 || st.Throttled == 0 || retries["429"] == 0 || retries["500"] == 0 {
		t.Errorf("faults not exercised: %+v, retries %v", st, retries)
	}
}

func stixTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func TestDeliverStopsOnContextEnd(t *testing.T) {
	sim := startSim(t, simsentinel.Options{Faults: simsentinel.Faults{ServerErrorRate: 1}})
	c, err := New(simConfig(sim), unlimited())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	attempts := 0
	_, err = Deliver(ctx, c, testBatch(1, time.Now()), RetryOptions{
		InitialInterval: time.Millisecond,
		Notify: func(error, time.Duration) {
			if attempts++; attempts == 3 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Deliver error %v, want context.Canceled naming the last 500", err)
	}
	if len(sim.Objects(simsentinel.DefaultWorkspaceID)) != 0 {
		t.Fatal("objects stored despite 500s")
	}
}
