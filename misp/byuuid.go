package misp

import (
	"context"
	"fmt"
	"maps"
	"strings"
)

// SearchEventsByUUID runs one restSearch for the events uuids with filters (`"uuid": [...]`),
// so that MISP applies its server-side filters to each of them in a single request: the
// real-time path's coalesced re-fetch. It returns the events found, in MISP's order; an event
// the filters exclude (or that no longer exists) is absent. The page is one larger than the
// list, so one request answers it. Failures are retried as a SearchEvents page is.
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
	var out []*Event
	_, err := c.SearchEvents(ctx, f, len(uuids)+1, func(page []*Event) error {
		for _, ev := range page {
			if _, ok := want[strings.ToLower(ev.UUID)]; ok {
				out = append(out, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search %d events by uuid: %w", len(uuids), err)
	}
	return out, nil
}
