package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/daemon"
)

// SinkState compares one sink's expected and actual live indicators.
type SinkState struct {
	Sink     string
	Expected int
	Actual   int
	Missing  []string // examples
	Extra    []string // examples
	// MissingCount and ExtraCount are how many indicators are missing and extra in all.
	MissingCount, ExtraCount int
}

// Equal reports whether the sink holds exactly what it should.
func (s SinkState) Equal() bool { return len(s.Missing) == 0 && len(s.Extra) == 0 }

func (s SinkState) String() string {
	if s.Equal() {
		return fmt.Sprintf("sink %s: %d live indicators, as expected", s.Sink, s.Actual)
	}
	return fmt.Sprintf("sink %s: want %d live indicators, have %d; missing e.g. %v; extra e.g. %v",
		s.Sink, s.Expected, s.Actual, s.Missing, s.Extra)
}

// Compare computes, for every sink, the expected state from MISP's events (through the same
// filtered search and conversion options the daemon uses) and compares it with the Sentinel
// simulator's.
func (l *Lab) Compare(ctx context.Context, cfg *config.Config, now time.Time) ([]SinkState, error) {
	var out []SinkState
	for i, spec := range l.Opts.Sinks {
		sinkCfg := cfg.Sinks[i]
		var want, got Live
		var err error
		if sinkCfg.Kind == config.SinkDefender {
			want, err = l.ExpectedDefender(ctx, cfg, sinkCfg, now)
		} else {
			want, err = l.Expected(ctx, cfg, spec.Name, daemon.ConversionOptions(cfg, sinkCfg), now)
		}
		if err != nil {
			return nil, fmt.Errorf("expected state of sink %s: %w", spec.Name, err)
		}
		if sinkCfg.Kind == config.SinkDefender {
			got = l.ActualDefender(spec)
		} else {
			got, err = l.Actual(spec, sinkCfg.SourceSystem)
		}
		if err != nil {
			return nil, fmt.Errorf("actual state of sink %s: %w", spec.Name, err)
		}
		missing, extra := want.Diff(got, 3)
		missingCount, extraCount := want.DiffCount(got)
		out = append(out, SinkState{Sink: spec.Name, Expected: want.Count(), Actual: got.Count(), Missing: missing, Extra: extra,
			MissingCount: missingCount, ExtraCount: extraCount})
	}
	return out, nil
}

// WaitConverged polls Compare until every sink is equal (and, with atLeast > 0, holds at least
// that many indicators) or ctx ends; it returns the last comparison.
func (l *Lab) WaitConverged(ctx context.Context, cfg *config.Config, atLeast int) ([]SinkState, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last []SinkState
	var lastErr error
	for {
		states, err := l.Compare(ctx, cfg, time.Now())
		if err == nil {
			if allEqual(states, atLeast) {
				return states, nil
			}
			last = states
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if last == nil && lastErr != nil {
				return nil, lastErr
			}
			return last, fmt.Errorf("not converged: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func allEqual(states []SinkState, atLeast int) bool {
	for _, s := range states {
		if !s.Equal() || s.Actual < atLeast {
			return false
		}
	}
	return true
}
