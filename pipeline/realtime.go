package pipeline

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// realtimeLog orders the real-time path's actions against the reconciler's reads of MISP, so
// that a reconcile page read before a real-time notice cannot undo the notice (a page holding
// an event that a misp_json_event delete then removed would otherwise re-apply the old copy and
// re-activate the event until the next full run).
//
// Every committed real-time action takes the next number of one sequence and records it as the
// event's last action; a read takes the current number as its mark before it starts. A read's
// copy of an event is stale when the event's last action is later than the read's mark. An
// event's check and apply and its real-time actions hold the same lock, so no action can slip
// between a check and the write it allows.
type realtimeLog struct {
	mu   sync.Mutex
	seq  uint64
	last map[string]uint64 // event uuid -> number of its last committed real-time action

	seed  maphash.Seed
	locks [64]sync.Mutex // per-event locks, striped by the event uuid's hash
}

func newRealtimeLog() *realtimeLog {
	return &realtimeLog{last: make(map[string]uint64), seed: maphash.MakeSeed()}
}

// lock locks event uuid against the other path and returns the unlock.
func (l *realtimeLog) lock(uuid string) func() {
	m := &l.locks[maphash.String(l.seed, uuid)%uint64(len(l.locks))]
	m.Lock()
	return m.Unlock
}

// record notes a committed real-time action on event uuid.
func (l *realtimeLog) record(uuid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.last[uuid] = l.seq
}

// mark returns the mark of a read about to start. The reconciler is the one reader and its
// reads are sequential (runs are serialised, pages are applied in turn): once a new read
// starts, no older mark is checked again, and no action recorded so far is later than the new
// mark, so the log forgets them all; it holds at most the actions during one read.
func (l *realtimeLog) mark() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.last)
	return l.seq
}

// stale reports whether a read at mark is older than the last real-time action on uuid.
func (l *realtimeLog) stale(uuid string, mark uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last[uuid] > mark
}

// ReadMark returns the mark of a read of MISP that is about to start. Pass it to ApplyRead or
// RemoveRead with what that read found. Reads are sequential: taking a mark ends the reads of
// the marks before it (the reconciler is the one reader).
func (p *Pipeline) ReadMark() uint64 { return p.realtime.mark() }

// ApplyRead applies ev, which a read of MISP started at mark returned, unless the real-time
// path has acted on the event since: then it changes nothing and reports superseded (the
// notice is newer than the read, and the next reconcile reads the event again).
func (p *Pipeline) ApplyRead(ev *misp.Event, mark uint64) (st Stats, superseded bool, err error) {
	return p.applyRead(ev, mark, ActionApplied, p.ApplyEvent)
}

// ApplyAgedRead is ApplyRead with ApplyAgedEvent: for an event the read found outside the
// filters' time window but inside every other filter.
func (p *Pipeline) ApplyAgedRead(ev *misp.Event, mark uint64) (st Stats, superseded bool, err error) {
	return p.applyRead(ev, mark, ActionAppliedAged, p.ApplyAgedEvent)
}

func (p *Pipeline) applyRead(ev *misp.Event, mark uint64, action string, apply func(*misp.Event) (Stats, error)) (st Stats, superseded bool, err error) {
	if ev == nil || ev.UUID == "" {
		st, err = apply(ev)
		return st, false, err
	}
	start := time.Now()
	defer p.realtime.lock(ev.UUID)()
	if p.realtime.stale(ev.UUID, mark) {
		p.logApplied(SourceReconcile, ev.UUID, applied{action: ActionSuperseded, event: ev}, time.Since(start), false)
		return nil, true, nil
	}
	st, err = apply(ev)
	if err == nil {
		p.logApplied(SourceReconcile, ev.UUID, applied{action: action, event: ev, stats: st}, time.Since(start), false)
	}
	return st, false, err
}

// RemoveRead revokes event uuid, which a read of MISP started at mark found gone or filtered
// out, unless the real-time path has acted on the event since (see ApplyRead).
func (p *Pipeline) RemoveRead(uuid string, mark uint64) (st Stats, superseded bool, err error) {
	start := time.Now()
	defer p.realtime.lock(uuid)()
	if p.realtime.stale(uuid, mark) {
		p.logApplied(SourceReconcile, uuid, applied{action: ActionSuperseded}, time.Since(start), false)
		return nil, true, nil
	}
	st, err = p.RemoveEvent(uuid)
	if err == nil {
		p.logApplied(SourceReconcile, uuid, applied{action: ActionOutsideFilters, stats: st}, time.Since(start), false)
	}
	return st, false, err
}
