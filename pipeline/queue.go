package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// NoticeSubmitter is implemented by a Handler that can take a notice without waiting for its
// consequences (*Pipeline): done is called once, with nil after the notice's consequences are
// committed to the store, or with the error that stopped them. Notices about one event take
// effect in the order submitted. A source that cannot acknowledge anything (ZeroMQ) submits, so
// that many notices wait together and one MISP request re-fetches them all.
type NoticeSubmitter interface {
	SubmitNotice(ctx context.Context, n Notice, done func(error))
}

// noticeQueue is the real-time path's wait set: at most one step per event waits, and one per
// event runs, so one event's notices take effect in order while different events are read from
// MISP together.
//
// A notice joins its event's waiting step: a publish merges into a waiting publish (ZeroMQ and
// webhook notices of one publish cost one fetch), a delete replaces whatever waits (a delete
// after a publish wins; the publish is never fetched). Up to Concurrency fetchers each take up
// to Batch waiting steps and re-fetch the published ones with one restSearch call
// (`"uuid": [...]`), then apply each step under the event's real-time lock. While a step runs,
// the event's next notices wait in a new step that starts only after it: a later notice never
// applies before an earlier one. A delete that arrives while its event's fetch is in flight wins
// over the fetch's result: the result is dropped, never applied, and the delete step, which runs
// next, answers the dropped step's waiters too.
type noticeQueue struct {
	p           *Pipeline
	batch       int
	concurrency int

	mu      sync.Mutex
	events  map[string]*queued // event uuid -> its waiting and running steps
	ready   []string           // events whose waiting step may start, oldest first
	workers int                // fetchers running
}

// queued is one event's place in the queue.
type queued struct {
	next    *step // waiting for a fetcher; nil when nothing waits
	running bool  // a step of this event is being executed
	inReady bool  // the uuid is in ready
}

// step is what one or more merged notices ask of an event: remove it, then read and apply it.
type step struct {
	remove  bool        // a delete notice: remove the event first
	publish bool        // then read the event (re-fetch or payload) and apply it
	event   *misp.Event // the latest payload, used when notices are not re-fetched
	waiters []*waiter
	// sources names the sources of the merged notices and since when the first waits, for
	// the event's log line.
	sources []string
	since   time.Time
}

// fetch reports whether the step needs the event from MISP.
func (s *step) fetch(refetch bool) bool { return s.publish && (refetch || s.event == nil) }

type waiter struct {
	ctx  context.Context
	done func(error)
	stop func() bool // stops the context.AfterFunc that withdraws the waiter
}

func newNoticeQueue(p *Pipeline, batch, concurrency int) *noticeQueue {
	return &noticeQueue{p: p, batch: batch, concurrency: concurrency, events: map[string]*queued{}}
}

// submit adds n to its event's waiting step. When ctx ends before the step started, the waiter
// is withdrawn with ctx's error (and a step nobody waits for any longer never runs).
func (q *noticeQueue) submit(ctx context.Context, n Notice, done func(error)) {
	switch {
	case n.EventUUID == "":
		done(fmt.Errorf("handle notice: no event uuid"))
		return
	case n.Kind != Published && n.Kind != Deleted:
		done(fmt.Errorf("handle notice for event %s: unknown kind %d", n.EventUUID, n.Kind))
		return
	case n.Kind == Published && !q.p.cfg.Refetch && n.Event == nil && q.p.cfg.Fetcher == nil:
		done(fmt.Errorf("handle notice for event %s: no event content", n.EventUUID))
		return
	}
	uuid := n.EventUUID
	w := &waiter{ctx: ctx, done: done}
	q.mu.Lock()
	e := q.events[uuid]
	if e == nil {
		e = &queued{}
		q.events[uuid] = e
	}
	if e.next == nil {
		e.next = &step{since: time.Now()}
	}
	s := e.next
	if !slices.Contains(s.sources, n.Source) {
		s.sources = append(s.sources, n.Source)
	}
	if n.Kind == Deleted {
		s.remove, s.publish, s.event = true, false, nil
	} else {
		s.publish, s.event = true, n.Event
	}
	s.waiters = append(s.waiters, w)
	w.stop = context.AfterFunc(ctx, func() { q.withdraw(uuid, w) })
	if !e.running && !e.inReady {
		q.ready = append(q.ready, uuid)
		e.inReady = true
	}
	start := q.startWorkerLocked()
	q.mu.Unlock()
	if start {
		go q.work()
	}
}

// startWorkerLocked reports whether a new fetcher should start, counting it as started.
func (q *noticeQueue) startWorkerLocked() bool {
	if q.workers >= q.concurrency || len(q.ready) == 0 {
		return false
	}
	q.workers++
	return true
}

// withdraw removes w from its event's waiting step when its context ended before the step
// started, and answers it with the context's error.
func (q *noticeQueue) withdraw(uuid string, w *waiter) {
	q.mu.Lock()
	e := q.events[uuid]
	if e == nil || e.next == nil {
		q.mu.Unlock()
		return
	}
	s := e.next
	i := -1
	for j, x := range s.waiters {
		if x == w {
			i = j
			break
		}
	}
	if i < 0 {
		q.mu.Unlock()
		return
	}
	s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
	if len(s.waiters) == 0 {
		e.next = nil
		if !e.running {
			delete(q.events, uuid) // its stale entry in ready is skipped
		}
	}
	q.mu.Unlock()
	w.done(context.Cause(w.ctx))
}

// taken is a step a fetcher runs.
type taken struct {
	uuid string
	step *step
}

// take moves up to batch waiting steps to running.
func (q *noticeQueue) takeLocked() []taken {
	var out []taken
	for len(q.ready) > 0 && len(out) < q.batch {
		uuid := q.ready[0]
		q.ready = q.ready[1:]
		e := q.events[uuid]
		if e == nil || e.running || e.next == nil {
			continue // withdrawn, or a stale entry
		}
		e.inReady = false
		e.running = true
		out = append(out, taken{uuid: uuid, step: e.next})
		e.next = nil
	}
	if len(q.ready) == 0 {
		q.ready = nil // let the backing array go
	}
	return out
}

// work runs batches until nothing waits.
func (q *noticeQueue) work() {
	for {
		q.mu.Lock()
		batch := q.takeLocked()
		if len(batch) == 0 {
			q.workers--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.run(batch)
	}
}

// run re-fetches the published events of batch with one restSearch call and applies each step.
func (q *noticeQueue) run(batch []taken) {
	p := q.p
	var uuids []string
	var ctxs []context.Context
	for _, t := range batch {
		for _, w := range t.step.waiters {
			w.stop() // a running step answers every waiter itself
		}
		if t.step.fetch(p.cfg.Refetch) {
			uuids = append(uuids, t.uuid)
			for _, w := range t.step.waiters {
				ctxs = append(ctxs, w.ctx)
			}
		}
	}
	var fetched map[string]*misp.Event
	var fetchErr error
	if len(uuids) > 0 {
		fetched, fetchErr = q.fetch(uuids, ctxs)
	}
	for _, t := range batch {
		q.finish(t, fetched, fetchErr)
	}
}

// fetch reads uuids with one restSearch call, cancelled once every waiter's context ended.
func (q *noticeQueue) fetch(uuids []string, ctxs []context.Context) (map[string]*misp.Event, error) {
	p := q.p
	if p.cfg.Fetcher == nil {
		return nil, fmt.Errorf("re-fetch %d events: no MISP fetcher", len(uuids))
	}
	ctx, release := anyAlive(ctxs)
	defer release()
	p.cfg.Metrics.observeRefetch(len(uuids))
	evs, err := p.cfg.Fetcher.SearchEventsByUUID(ctx, uuids, p.noticeFilters)
	if err != nil {
		return nil, fmt.Errorf("re-fetch with the event filters: %w", err)
	}
	out := make(map[string]*misp.Event, len(evs))
	for _, ev := range evs {
		if ev != nil {
			out[strings.ToLower(ev.UUID)] = ev
		}
	}
	return out, nil
}

// anyAlive returns a context that ends when every one of ctxs has ended.
func anyAlive(ctxs []context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	left := atomic.Int64{}
	left.Store(int64(len(ctxs)))
	stops := make([]func() bool, 0, len(ctxs))
	for _, c := range ctxs {
		stops = append(stops, context.AfterFunc(c, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	if len(ctxs) == 0 {
		cancel()
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// finish applies one taken step under the event's real-time lock, unless a delete arrived
// while it ran, then answers its waiters and lets the event's next step start.
func (q *noticeQueue) finish(t taken, fetched map[string]*misp.Event, fetchErr error) {
	p := q.p
	unlock := p.realtime.lock(t.uuid)
	q.mu.Lock()
	e := q.events[t.uuid]
	superseded := e.next != nil && e.next.remove
	if superseded {
		// The delete came after this step's notices: it wins over what the fetch read, and
		// answers these waiters once it is committed.
		e.next.waiters = append(t.step.waiters, e.next.waiters...)
		for _, w := range t.step.waiters {
			w.stop = context.AfterFunc(w.ctx, func() { q.withdraw(t.uuid, w) })
		}
	}
	q.mu.Unlock()
	var err error
	if !superseded {
		var changed bool
		var a applied
		changed, a, err = p.applyStep(t.uuid, t.step, fetched, fetchErr)
		if changed {
			p.realtime.record(t.uuid)
		}
		if err == nil {
			p.logApplied(strings.Join(t.step.sources, ","), t.uuid, a, time.Since(t.step.since), true)
		}
	}
	unlock()

	q.mu.Lock()
	e.running = false
	if e.next != nil {
		if !e.inReady {
			q.ready = append(q.ready, t.uuid)
			e.inReady = true
		}
	} else if q.events[t.uuid] == e {
		delete(q.events, t.uuid)
	}
	start := q.startWorkerLocked()
	q.mu.Unlock()
	if start {
		go q.work()
	}
	if superseded {
		return
	}
	for _, w := range t.step.waiters {
		w.done(err)
	}
}

// applyStep commits one step. changed reports whether anything was committed, so that the
// action is recorded against the reconciler's reads; a says what, for the event's log line.
func (p *Pipeline) applyStep(uuid string, s *step, fetched map[string]*misp.Event, fetchErr error) (changed bool, a applied, err error) {
	if s.remove {
		st, err := p.RemoveEvent(uuid)
		if err != nil {
			return false, a, err
		}
		changed = true
		a.action = ActionDeleted
		a.add(st)
	}
	if !s.publish {
		return changed, a, nil
	}
	if !s.fetch(p.cfg.Refetch) {
		st, err := p.ApplyEvent(s.event)
		a.action, a.event = ActionApplied, s.event
		a.add(st)
		return err == nil || changed, a, err
	}
	if fetchErr != nil {
		return changed, a, fmt.Errorf("event %s: %w", uuid, fetchErr)
	}
	ev, found := fetched[strings.ToLower(uuid)]
	if !found {
		// Outside the filters (or gone since): nothing of it may stay exported.
		st, err := p.RemoveEvent(uuid)
		a.action = ActionOutsideFilters
		a.add(st)
		return err == nil || changed, a, err
	}
	st, err := p.ApplyEvent(ev)
	a.action, a.event = ActionApplied, ev
	a.add(st)
	return err == nil || changed, a, err
}
