package pusher

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// An idle Run still goes round every Heartbeat, so LastBeat shows the loop is alive.
func TestIdleRunBeats(t *testing.T) {
	st := openStore(t)
	p := newPusher(t, Config{Sink: "s", Heartbeat: 10 * time.Millisecond}, st, newFakeSink(nil), nil)
	runPusher(t, p)
	var first time.Time
	deadline := time.Now().Add(time.Minute)
	for {
		b := p.LastBeat()
		if first.IsZero() {
			first = b
		} else if b.After(first) {
			return // went round again with nothing to do
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle loop never beat again after %v", first)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RetryNow makes a failing sink try again at once instead of at the end of its (here one
// hour) backoff step, healing it first.
func TestRetryNowTriesAFailingSinkAtOnce(t *testing.T) {
	st := openStore(t)
	var fixed atomic.Bool
	h := &healingSink{}
	h.heals = 1 // the next Heal succeeds
	h.fakeSink = newFakeSink(func(context.Context, int, []Object) ([]Rejection, error) {
		if !fixed.Load() {
			return nil, &FatalError{Status: 401, Cause: "credential", Err: errors.New("invalid client secret")}
		}
		return nil, nil
	})
	p := newPusher(t, Config{Sink: "s", Linger: time.Millisecond, FailingInitial: time.Hour, FailingMax: time.Hour}, st, h, nil)
	runPusher(t, p)
	enqueue(t, st, "s", 1, 10, time.Now())
	waitState(t, p, "failing", func(s State) bool { return !s.Up })
	fixed.Store(true)
	p.RetryNow()
	waitDepth(t, st, "s", 0)
	waitState(t, p, "recovery", func(s State) bool { return s.Up })
	if h.healed() != 2 {
		t.Errorf("%d heals, want the one RetryNow asked for", h.healed()-1)
	}
}
