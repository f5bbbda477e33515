package window

import (
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Calls{}
	perMinute := Limit{N: 2, Per: time.Minute}
	perHour := Limit{N: 3, Per: time.Hour}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, step := range []struct {
		at   time.Duration
		key  string
		ok   bool
		wait time.Duration
	}{
		{0, "a", true, 0},
		{10 * time.Second, "a", true, 0},
		{20 * time.Second, "a", false, 40 * time.Second},           // the minute is full until 0s+1m
		{20 * time.Second, "b", true, 0},                           // keys are counted apart
		{61 * time.Second, "a", true, 0},                           // the first call left the minute
		{70 * time.Second, "a", false, time.Hour - 70*time.Second}, // the hour is full (the refused call is not counted) until 0s+1h
		{time.Hour + time.Second, "a", true, 0},
	} {
		wait, ok := c.Admit(step.key, at(step.at), perMinute, perHour)
		if ok != step.ok || wait != step.wait {
			t.Errorf("%s at %v: admitted %v, wait %v; want %v, %v", step.key, step.at, ok, wait, step.ok, step.wait)
		}
	}
	if n := len(c["a"]); n != 3 {
		t.Errorf("%d calls of a remembered, want the 3 within the last hour", n)
	}
	if wait, ok := c.Admit("c", t0, Limit{N: -1, Per: time.Minute}); !ok || wait != 0 {
		t.Errorf("a negative limit refused a call (wait %v)", wait)
	}
	if wait, ok := c.Admit("d", t0, Limit{N: 0, Per: time.Minute}); ok || wait != time.Minute {
		t.Errorf("a zero limit: admitted %v, wait %v; want refused for a minute", ok, wait)
	}
}
