package misp

import (
	"context"
	"slices"
	"sync"
	"time"
)

// ModelFetcher reads one decaying model (Client.DecayingModel).
type ModelFetcher interface {
	DecayingModel(ctx context.Context, id string) (*DecayingModel, error)
}

// ModelCache keeps the decaying models an events search's decay_score entries name, read
// through MISP's decayingModel API and used for MaxAge before they are read again. A model
// that cannot be read is remembered as unknown for MaxAge too, so a MISP that refuses the
// API costs one request per model and period. It is safe for concurrent use.
type ModelCache struct {
	fetch  ModelFetcher
	maxAge time.Duration
	now    func() time.Time
	// OnError, when set, is told about each model that could not be read.
	OnError func(id string, err error)

	mu      sync.Mutex
	entries map[string]modelEntry
}

type modelEntry struct {
	model   *DecayingModel // nil: could not be read
	fetched time.Time
}

// NewModelCache returns a cache reading through fetch; now is the clock (time.Now when nil).
func NewModelCache(fetch ModelFetcher, maxAge time.Duration, now func() time.Time) *ModelCache {
	if now == nil {
		now = time.Now
	}
	return &ModelCache{fetch: fetch, maxAge: maxAge, now: now, entries: map[string]modelEntry{}}
}

// Models returns the known models among ids, reading those not cached or older than MaxAge.
// A model that was known and cannot be read again is kept until it is read successfully.
func (c *ModelCache) Models(ctx context.Context, ids []string) map[string]DecayingModel {
	out := make(map[string]DecayingModel, len(ids))
	for _, id := range ids {
		if m := c.model(ctx, id); m != nil {
			out[id] = *m
		}
	}
	return out
}

func (c *ModelCache) model(ctx context.Context, id string) *DecayingModel {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < c.maxAge {
		return e.model
	}
	m, err := c.fetch.DecayingModel(ctx, id)
	if err != nil {
		if c.OnError != nil {
			c.OnError(id, err)
		}
		m = e.model // keep what was known
	}
	c.mu.Lock()
	c.entries[id] = modelEntry{model: m, fetched: now}
	c.mu.Unlock()
	return m
}

// ScoredModelIDs lists, once each in order of appearance, the ids of the models that scored
// any attribute of ev.
func ScoredModelIDs(ev *Event) []string {
	var ids []string
	ev.AllAttributes(func(_ *Object, a *Attribute) bool {
		for _, s := range a.DecayScores {
			if s.ModelID != "" && !slices.Contains(ids, s.ModelID) {
				ids = append(ids, s.ModelID)
			}
		}
		return true
	})
	return ids
}
