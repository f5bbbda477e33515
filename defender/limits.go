package defender

import (
	"context"
	"time"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
)

// Limiters hands out the per-call-type rate limits of each Entra identity, so that every
// Defender client of an identity shares them (MDE counts calls per application and tenant).
// Create one per daemon with NewLimiters and share it. It is safe for concurrent use. The
// pacing itself is the pusher's sliding-window log, one quota key per identity and call type.
type Limiters struct {
	pacers *pusher.Pacers
	limits RateLimits
}

// NewLimiters returns an empty registry with the given limits (SpecRateLimits in production).
func NewLimiters(l RateLimits) *Limiters {
	// The rates already include headroom: tell the pacers to add none.
	pacers, err := pusher.NewPacers(0)
	if err != nil {
		panic(err) // a headroom of 0 is always valid
	}
	return &Limiters{pacers: pacers, limits: l}
}

// callLimit is the quota of one call type of one identity.
type callLimit struct {
	pacers *pusher.Pacers
	quota  []pusher.Quota
}

// Wait blocks until the identity may make one more call of this type, or ctx ends.
func (l callLimit) Wait(ctx context.Context) error { return l.pacers.Reserve(ctx, l.quota) }

// Pause holds every call of this type of the identity until until.
func (l callLimit) Pause(until time.Time) { l.pacers.Pause(l.quota, until) }

// identityLimits are the limits of one identity, one per call type.
type identityLimits struct {
	imports, deletes, lists callLimit
}

func (l *Limiters) forIdentity(id sentinel.Identity) identityLimits {
	mk := func(call string, perMinute float64) callLimit {
		q := pusher.Quota{Key: "defender:" + id.String() + ":" + call, Requests: max(1, int(perMinute)), Per: l.limits.Minute}
		return callLimit{pacers: l.pacers, quota: []pusher.Quota{q}}
	}
	return identityLimits{
		imports: mk("import", l.limits.ImportPerMinute),
		deletes: mk("delete", l.limits.DeletePerMinute),
		lists:   mk("list", l.limits.ListPerMinute),
	}
}

func (l identityLimits) of(op operation) callLimit {
	switch op {
	case opImport:
		return l.imports
	case opDelete:
		return l.deletes
	default:
		return l.lists
	}
}
