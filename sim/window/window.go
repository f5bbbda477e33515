// Package window keeps the sliding-window call limits the simulated Microsoft APIs enforce
// (Sentinel's upload quota per identity, Defender's limits per application and call type):
// the times of the calls admitted under each key, and whether one more fits. It never
// decides what a key or a limit is (each simulator follows its spec), and it is not safe for
// concurrent use: the simulator holding it locks around it.
package window

import "time"

// Limit allows at most N calls in any span of Per; a negative N is no limit.
type Limit struct {
	N   int
	Per time.Duration
}

// Calls are the times of the admitted calls, per key, oldest first.
type Calls map[string][]time.Time

// Admit records a call under key at now when every limit has room for it. Otherwise it
// records nothing and returns how long until the first full limit has room again. Calls older
// than the longest limit are forgotten.
func (c Calls) Admit(key string, now time.Time, limits ...Limit) (wait time.Duration, admitted bool) {
	var horizon time.Duration
	for _, l := range limits {
		horizon = max(horizon, l.Per)
	}
	calls := c[key]
	for len(calls) > 0 && !calls[0].After(now.Add(-horizon)) {
		calls = calls[1:]
	}
	c[key] = calls
	for _, l := range limits {
		if l.N < 0 {
			continue
		}
		start := now.Add(-l.Per)
		in, first := 0, -1
		for i, t := range calls {
			if t.After(start) {
				in++
				if first < 0 {
					first = i
				}
			}
		}
		if in >= l.N {
			if l.N == 0 {
				return l.Per, false
			}
			// Room comes back when the oldest of the last N calls leaves the span.
			return calls[first+in-l.N].Add(l.Per).Sub(now), false
		}
	}
	c[key] = append(calls, now)
	return 0, true
}
