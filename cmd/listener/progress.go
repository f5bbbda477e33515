package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/store"
)

// progressLogInterval is how often `sync` logs its progress when standard error is not a
// terminal.
const progressLogInterval = 10 * time.Second

// outboxPollInterval is how often `sync` reads the outbox depths to follow the uploads.
const outboxPollInterval = 500 * time.Millisecond

// syncProgress follows a `listener sync`: events fetched of MISP's total (X-Result-Count), then
// indicators uploaded of those queued, with an ETA from each identity's upload quota. On a
// terminal it draws a bar; otherwise it logs one line every progressLogInterval.
type syncProgress struct {
	sinks []config.Sink

	mu       sync.Mutex
	total    int // X-Result-Count; -1 until MISP sent it
	fetched  int
	depth    map[string]int // outbox depth per sink, last read
	peak     map[string]int // highest depth per sink: what was queued
	uploads  bool           // the upload phase began (an outbox shrank, or every event was fetched)
	bar      *progressbar.ProgressBar
	barPhase string

	terminal bool
	out      io.Writer
	log      interface{ Infof(string, ...any) }
	stop     chan struct{}
	done     chan struct{}
	follow   sync.WaitGroup
}

// newSyncProgress returns the progress of a sync over sinks. ticks drives the log lines off a
// terminal (nil: every progressLogInterval).
func newSyncProgress(stderr io.Writer, log interface{ Infof(string, ...any) }, sinks []config.Sink, ticks <-chan time.Time) *syncProgress {
	p := &syncProgress{
		sinks: sinks, total: -1, depth: map[string]int{}, peak: map[string]int{},
		out: stderr, log: log, stop: make(chan struct{}), done: make(chan struct{}),
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.terminal = true
		close(p.done)
		return p
	}
	if ticks == nil {
		t := time.NewTicker(progressLogInterval)
		ticks = t.C
		go func() { <-p.done; t.Stop() }()
	}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-ticks:
				p.log.Infof("sync progress: %s", p.Line())
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

// Context returns ctx with MISP's result count reported to the progress.
func (p *syncProgress) Context(ctx context.Context) context.Context {
	return misp.WithSearchTotal(ctx, p.searchTotal)
}

func (p *syncProgress) searchTotal(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	p.redraw()
}

// Fetched is the reconciler's progress callback (daemon.Options.Progress).
func (p *syncProgress) Fetched(_ string, _ int, events int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched = events
	if p.total >= 0 && events >= p.total {
		p.uploads = true
	}
	p.redraw()
}

// Outboxes records each sink's outbox depth; a shrinking outbox means uploads are under way.
func (p *syncProgress) Outboxes(depth map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, d := range depth {
		if d < p.depth[name] {
			p.uploads = true
		}
		p.depth[name] = d
		p.peak[name] = max(p.peak[name], d)
	}
	p.redraw()
}

// Follow reads the outbox depths of st every outboxPollInterval until Finish.
func (p *syncProgress) Follow(st *store.Store) {
	p.follow.Add(1)
	go func() {
		defer p.follow.Done()
		t := time.NewTicker(outboxPollInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-p.stop:
				return
			}
			depth := map[string]int{}
			for _, s := range p.sinks {
				if stats, err := st.Stats(s.Name); err == nil {
					depth[s.Name] = int(stats.OutboxDepth)
				}
			}
			p.Outboxes(depth)
		}
	}()
}

// Finish stops the display; what is written next starts on a line of its own.
func (p *syncProgress) Finish() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.out)
		p.bar = nil
	}
	p.mu.Unlock()
	<-p.done
	p.follow.Wait()
}

// counts returns events fetched and total, indicators queued and uploaded, and the ETA of the
// rest from the identities' quotas. p.mu must be held.
func (p *syncProgress) counts() (queued, uploaded int, eta time.Duration) {
	requests := map[string]float64{} // per identity: upload requests still needed
	rpm := map[string]int{}
	for _, s := range p.sinks {
		queued += p.peak[s.Name]
		uploaded += p.peak[s.Name] - p.depth[s.Name]
		id := s.Identity.Key()
		requests[id] += math.Ceil(float64(p.depth[s.Name]) / float64(max(s.BatchSize, 1)))
		if rpm[id] == 0 || s.RequestsPerMinute < rpm[id] {
			rpm[id] = s.RequestsPerMinute
		}
	}
	for id, n := range requests {
		if rpm[id] > 0 {
			eta = max(eta, time.Duration(n/float64(rpm[id])*float64(time.Minute)))
		}
	}
	return queued, uploaded, eta.Round(time.Second)
}

// Line is the progress in one line, as logged off a terminal.
func (p *syncProgress) Line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := "?"
	if p.total >= 0 {
		total = fmt.Sprint(p.total)
	}
	queued, uploaded, eta := p.counts()
	line := fmt.Sprintf("events %d/%s fetched; indicators %d/%d uploaded", p.fetched, total, uploaded, queued)
	if p.uploads {
		line += fmt.Sprintf(", ETA %s at the identities' quota", eta)
	}
	return line
}

// redraw updates the terminal bar: events of the total, then indicators of those queued.
// p.mu must be held.
func (p *syncProgress) redraw() {
	if !p.terminal {
		return
	}
	select {
	case <-p.stop:
		return
	default:
	}
	if !p.uploads {
		p.show("events", p.total, "events fetched")
		_ = p.bar.Set(p.fetched)
		return
	}
	queued, uploaded, eta := p.counts()
	p.show("indicators", queued, "indicators uploaded")
	p.bar.ChangeMax(queued)
	p.bar.Describe(fmt.Sprintf("indicators uploaded (ETA %s at quota)", eta))
	_ = p.bar.Set(uploaded)
}

// show makes the bar the one of phase, of max items (-1: unknown).
func (p *syncProgress) show(phase string, max int, description string) {
	if p.bar != nil && p.barPhase == phase {
		if max >= 0 && p.bar.GetMax() != max {
			p.bar.ChangeMax(max)
		}
		return
	}
	if p.bar != nil {
		if p.barPhase == "events" {
			_ = p.bar.Set(p.fetched) // the events bar ends on the last count
		}
		_ = p.bar.Exit()
		fmt.Fprintln(p.out)
	}
	p.barPhase = phase
	p.bar = progressbar.NewOptions(max,
		progressbar.OptionSetWriter(p.out),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
	)
}
