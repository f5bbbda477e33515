package misp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
)

// SearchEventsByUUID runs one restSearch for the events uuids with filters (`"uuid": [...]`),
// so that MISP applies its server-side filters to each of them in a single request: the
// real-time path's coalesced re-fetch. It returns the events found, in MISP's order; an event
// the filters exclude (or that no longer exists) is absent. The page is one larger than the
// list, so one request answers it. Failures are retried as a SearchEvents page is. A requested
// event MISP returns that cannot be decoded fails the call with an error matching
// UndecodableEvent (errors.As) instead of being left out.
func (c *Client) SearchEventsByUUID(ctx context.Context, uuids []string, filters map[string]any) ([]*Event, error) {
	if len(uuids) == 0 {
		return nil, nil
	}
	want := make(map[string]struct{}, len(uuids))
	for _, u := range uuids {
		if err := checkEventRef(u); err != nil {
			return nil, fmt.Errorf("search events by uuid: %w", err)
		}
		want[strings.ToLower(u)] = struct{}{}
	}
	f := maps.Clone(filters)
	if f == nil {
		f = map[string]any{}
	}
	f["uuid"] = uuids
	var (
		out []*Event
		bad []error
	)
	_, err := c.StreamEvents(ctx, f, len(uuids)+1, Visitor{
		Request: func() { out, bad = out[:0], bad[:0] },
		Event: func(ev *Event) error {
			if _, ok := want[strings.ToLower(ev.UUID)]; ok {
				out = append(out, ev)
			}
			return nil
		},
		Undecodable: func(u UndecodableEvent) {
			if _, ok := want[strings.ToLower(u.UUID)]; ok || u.UUID == "" {
				bad = append(bad, u)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("search %d events by uuid: %w", len(uuids), err)
	}
	if len(bad) > 0 {
		// An event MISP returned but that cannot be decoded is not absent: reporting it
		// absent would revoke its indicators. The caller fails the batch (and reports a gap;
		// the reconciler skips the undecodable event and applies the others).
		return nil, fmt.Errorf("search %d events by uuid: %w", len(uuids), errors.Join(bad...))
	}
	return out, nil
}
