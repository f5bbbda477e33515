package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/mispsentinel/listener/store"
)

// PendingStore keeps the notices received but not applied before a shutdown (*store.Store).
type PendingStore interface {
	AddPendingNotices(notices []store.PendingNotice) error
	PendingNotices() ([]store.PendingNotice, error)
	DeletePendingNotice(eventUUID string) error
}

// PendingRecorder is implemented by a Handler that can keep notices a source received but could
// not hand over before it stopped; the ZeroMQ source records what its drain did not reach.
type PendingRecorder interface {
	RecordPending(notices []Notice) error
}

// RecordPending stores notices durably, the latest per event, so that ApplyPending applies them
// at the next start: a shutdown loses nothing that was received.
func (p *Pipeline) RecordPending(notices []Notice) error {
	if len(notices) == 0 {
		return nil
	}
	if p.cfg.Pending == nil {
		return fmt.Errorf("record %d pending notices: no pending store configured", len(notices))
	}
	recs := make([]store.PendingNotice, 0, len(notices))
	for _, n := range notices {
		recs = append(recs, store.PendingNotice{EventUUID: n.EventUUID, Kind: n.Kind.String()})
	}
	return p.cfg.Pending.AddPendingNotices(recs)
}

// ApplyPending applies the notices recorded by RecordPending, each one once, and forgets them:
// the daemon calls it at start before its catch-up. They go through the real-time queue as
// notices do (the same lock and record against the reconciler's reads, coalesced re-fetches):
// a published event is re-fetched by uuid with the event filters (the record keeps no
// content); a deleted one is removed. A notice that fails stays recorded for the next call. It
// returns how many were applied.
func (p *Pipeline) ApplyPending(ctx context.Context) (int, error) {
	if p.cfg.Pending == nil {
		return 0, nil
	}
	pending, err := p.cfg.Pending.PendingNotices()
	if err != nil {
		return 0, err
	}
	results := make([]chan error, len(pending))
	for i, rec := range pending {
		results[i] = make(chan error, 1)
		var kind NoticeKind
		switch rec.Kind {
		case Deleted.String():
			kind = Deleted
		case Published.String():
			kind = Published
		}
		// An unknown kind is refused by the queue and stays recorded.
		p.queue.submit(ctx, Notice{Source: SourcePending, Kind: kind, EventUUID: rec.EventUUID}, func(err error) { results[i] <- err })
	}
	applied := 0
	var errs []error
	for i, rec := range pending {
		if err := <-results[i]; err != nil {
			errs = append(errs, fmt.Errorf("pending %s notice of event %s: %w", rec.Kind, rec.EventUUID, err))
			continue
		}
		if err := p.cfg.Pending.DeletePendingNotice(rec.EventUUID); err != nil {
			errs = append(errs, err)
			continue
		}
		applied++
	}
	return applied, errors.Join(errs...)
}
