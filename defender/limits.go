package defender

import (
	"github.com/mispsentinel/listener/sentinel"
)

// Limiters hands out the per-call-type rate limits of each Entra identity, so that every
// Defender client of an identity shares them (MDE counts calls per application and tenant).
// Create one per daemon with NewLimiters and share it. It is safe for concurrent use.
type Limiters struct {
	imports, deletes, lists *sentinel.Limiters
}

// NewLimiters returns an empty registry with the given limits (SpecRateLimits in production).
func NewLimiters(l RateLimits) *Limiters {
	mk := func(perMinute float64) *sentinel.Limiters {
		// The rates already include headroom: tell the registry to add none.
		return sentinel.NewLimiters(sentinel.LimiterOptions{RequestsPerMinute: perMinute, Headroom: -1, Minute: l.Minute})
	}
	return &Limiters{imports: mk(l.ImportPerMinute), deletes: mk(l.DeletePerMinute), lists: mk(l.ListPerMinute)}
}

// identityLimits are the limits of one identity, one per call type.
type identityLimits struct {
	imports, deletes, lists *sentinel.IdentityLimit
}

func (l *Limiters) forIdentity(id sentinel.Identity) identityLimits {
	return identityLimits{imports: l.imports.For(id), deletes: l.deletes.For(id), lists: l.lists.For(id)}
}

func (l identityLimits) of(op operation) *sentinel.IdentityLimit {
	switch op {
	case opImport:
		return l.imports
	case opDelete:
		return l.deletes
	default:
		return l.lists
	}
}
