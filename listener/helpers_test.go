package listener

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"

	"github.com/mispsentinel/listener/pipeline"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// zmq4 v0.17.0's PUB socket never stops its writer goroutine on Close (the simulator's
		// publisher, not the code under test).
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"),
	)
}

// testLogger logs through t.Log so output shows up only for failing tests.
func testLogger(t *testing.T) *logrus.Logger {
	t.Helper()
	l := logrus.New()
	l.SetOutput(testWriter{t})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor polls cond until it holds. The deadline only keeps a broken test from hanging; no
// assertion depends on how fast anything happens.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a Handler and GapFunc that records what it is given.
type recorder struct {
	mu      sync.Mutex
	notices []pipeline.Notice
	gaps    []gap
	fail    func(pipeline.Notice) error // optional
}

type gap struct {
	since  time.Time
	reason string
}

func (r *recorder) HandleNotice(_ context.Context, n pipeline.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return err
		}
	}
	r.notices = append(r.notices, n)
	return nil
}

func (r *recorder) onGap(_ context.Context, since time.Time, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaps = append(r.gaps, gap{since: since, reason: reason})
}

func (r *recorder) snapshot() ([]pipeline.Notice, []gap) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pipeline.Notice(nil), r.notices...), append([]gap(nil), r.gaps...)
}

func (r *recorder) hasNotice(kind pipeline.NoticeKind, uuid string) bool {
	notices, _ := r.snapshot()
	for _, n := range notices {
		if n.Kind == kind && n.EventUUID == uuid {
			return true
		}
	}
	return false
}

func (r *recorder) gapCount(reason string) int {
	_, gaps := r.snapshot()
	c := 0
	for _, g := range gaps {
		if g.reason == reason {
			c++
		}
	}
	return c
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
