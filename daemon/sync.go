package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/reconcile"
)

// SyncOptions configure one `listener sync` run.
type SyncOptions struct {
	// EventUUID limits the run to one event, keeping the other filters.
	EventUUID string
	// SkipUpload reconciles into the store without draining the outboxes (dry runs drain a
	// copy of the store themselves).
	SkipUpload bool
}

// SinkResult is what one sink's drain did.
type SinkResult struct {
	pusher.DrainStats
	// Err is the sink's failure: a configuration error, or the drain's error.
	Err error
}

// SyncReport is the outcome of Sync.
type SyncReport struct {
	Reconcile *reconcile.Report
	Sinks     map[string]SinkResult
}

// Failed reports whether the run should end with a non-zero exit code: the search failed, an
// event could not be applied, a sink failed, or Sentinel rejected a record.
func (r *SyncReport) Failed(searchErr error) bool {
	if searchErr != nil || r.Reconcile == nil || len(r.Reconcile.Errors) > 0 {
		return true
	}
	for _, s := range r.Sinks {
		if s.Err != nil || s.Rejected > 0 {
			return true
		}
	}
	return false
}

// Summary is the one-line summary of the run, per sink: events, and indicators
// new/changed/unchanged/revoked/rejected.
func (r *SyncReport) Summary() string {
	var b strings.Builder
	events := 0
	if r.Reconcile != nil {
		events = r.Reconcile.Events
	}
	fmt.Fprintf(&b, "events=%d", events)
	if r.Reconcile != nil {
		for _, name := range sortedKeys(r.Sinks, r.Reconcile) {
			d := r.Reconcile.Sinks[name]
			s := r.Sinks[name]
			fmt.Fprintf(&b, " | %s: new=%d changed=%d unchanged=%d refreshed=%d revoked=%d uploaded=%d rejected=%d",
				name, d.New, d.Changed, d.Unchanged, d.Refreshed, d.Revoked, s.Accepted, s.Rejected)
			if s.Err != nil {
				fmt.Fprintf(&b, " FAILED (%v)", s.Err)
			}
		}
	}
	return b.String()
}

// Sync runs one full reconcile (or one event's) and drains every sink's outbox. The report is
// returned even with an error, covering what was done.
func (d *Daemon) Sync(ctx context.Context, opts SyncOptions) (*SyncReport, error) {
	rep := &SyncReport{Sinks: map[string]SinkResult{}}
	var err error
	if opts.EventUUID != "" {
		rep.Reconcile, err = d.reconciler.Event(ctx, opts.EventUUID)
	} else {
		rep.Reconcile, err = d.reconciler.Full(ctx)
	}
	// Whatever the search managed is queued: deliver it even when a later page failed.
	if !opts.SkipUpload {
		d.drain(ctx, rep)
	}
	return rep, err
}

func (d *Daemon) drain(ctx context.Context, rep *SyncReport) {
	type result struct {
		name string
		res  SinkResult
	}
	results := make(chan result, len(d.sinks))
	for _, s := range d.sinks {
		go func() {
			if s.err != nil {
				results <- result{s.name, SinkResult{Err: s.err}}
				return
			}
			stats, err := s.pusher.Drain(ctx)
			if err != nil && errors.Is(err, pusher.ErrSinkStopped) {
				err = fmt.Errorf("sink stopped: %w", errors.Unwrap(err))
			}
			results <- result{s.name, SinkResult{DrainStats: stats, Err: err}}
		}()
	}
	for range d.sinks {
		r := <-results
		rep.Sinks[r.name] = r.res
	}
}

func sortedKeys(sinks map[string]SinkResult, rec *reconcile.Report) []string {
	seen := map[string]bool{}
	var names []string
	for n := range sinks {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for n := range rec.Sinks {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
