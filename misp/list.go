package misp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
)

// ListEvents runs a paged restSearch as StreamEvents does, with up to concurrency pages in
// flight at once. It is meant for listings with small pages (metadata: true): a page is read
// whole into memory while it waits for its turn, so memory holds up to concurrency pages.
//
// Pages are delivered in order on the calling goroutine, each page's events to v.Event and
// then v.PageEnd, exactly as StreamEvents delivers them; v.Request must be nil (a listing is
// not ordered against other writers). The first page is asked alone, so that a listing that
// fits in one page costs one request; after a full page the next ones are asked ahead, within
// MISP's X-Result-Count when it sends one (a count is never trusted to end the search: only a
// short or empty page does). A page over MaxResponseBytes makes the rest of the search
// sequential, as StreamEvents, from the first event not delivered, with half the page size.
// concurrency below 2 is StreamEvents.
func (c *Client) ListEvents(ctx context.Context, filters map[string]any, pageSize, concurrency int, v Visitor) (SearchStats, error) {
	stats := SearchStats{Total: -1, PageSize: pageSize}
	if err := checkStream(filters, pageSize, v); err != nil {
		return stats, err
	}
	if v.Request != nil {
		return stats, errors.New("list events: a listing takes no Request callback")
	}
	if concurrency < 2 {
		return c.StreamEvents(ctx, filters, pageSize, v)
	}
	body, err := streamBody(filters)
	if err != nil {
		return stats, err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel() // pages asked ahead of the end are abandoned
	limit := pageSize
	pending := map[int]chan listedPage{}
	next := 1 // the next page to ask for
	ask := func() {
		ch := make(chan listedPage, 1)
		pending[next] = ch
		go func(b map[string]any) { ch <- c.readPage(ctx, b) }(pageBody(body, next, limit))
		next++
	}
	ask()
	delivered := map[string]struct{}{}
	for page := 1; ; page++ {
		r := <-pending[page]
		delete(pending, page)
		stats.Retries += r.retries
		if r.total >= 0 {
			stats.Total = max(stats.Total, r.total)
			if report, ok := ctx.Value(searchTotalKey{}).(func(int)); ok {
				report(stats.Total)
			}
		}
		if r.err != nil && !errors.Is(r.err, errTooLarge) {
			return stats, fmt.Errorf("search events page %d (limit %d): %w", page, limit, r.err)
		}
		if r.err == nil && len(r.ids) >= limit && page > 1 && allIn(r.ids, delivered) {
			return stats, fmt.Errorf("search events page %d (limit %d): MISP returned only events of earlier pages: it ignores paging; stopping instead of looping", page, limit)
		}
		for _, ev := range r.events {
			if err := v.Event(ev); err != nil {
				return stats, fmt.Errorf("handle events page %d: %w", page, err)
			}
			stats.Events++
		}
		for _, u := range r.undecodable {
			stats.Undecodable++
			if v.Undecodable != nil {
				v.Undecodable(u)
			}
		}
		for _, id := range r.ids {
			delivered[id] = struct{}{}
		}
		if v.PageEnd != nil {
			if err := v.PageEnd(); err != nil {
				return stats, fmt.Errorf("handle events page %d: %w", page, err)
			}
		}
		if r.err != nil { // over the size limit: go on alone, with smaller pages
			cancel()
			offset := (page-1)*limit + len(r.ids)
			if limit > 1 {
				stats.Shrunk++
				limit = max(limit/2, 1)
				stats.PageSize = limit
			}
			return stats, c.streamFrom(parent, body, limit, offset, delivered, v, &stats)
		}
		if len(r.ids) > 0 {
			stats.Pages++
		}
		if len(r.ids) < limit {
			return stats, nil
		}
		if next == page+1 {
			ask() // always one page past a full one
		}
		for next <= page+concurrency && (stats.Total < 0 || (next-1)*limit <= stats.Total) {
			ask()
		}
	}
}

// listedPage is one page a listing read ahead: its events, the ones it could not decode, the
// ids of both (in order) and MISP's X-Result-Count (-1 without one).
type listedPage struct {
	events      []*Event
	undecodable []UndecodableEvent
	ids         []string
	total       int
	retries     int
	err         error
}

// readPage reads one page whole, retried as StreamEvents retries a page.
func (c *Client) readPage(ctx context.Context, body map[string]any) listedPage {
	var r listedPage
	count, retries, err := c.searchWithRetry(ctx, body, pageVisitor{
		attempt: func() { r.events, r.undecodable, r.ids = nil, nil, nil },
		event: func(ev *Event) error {
			r.events = append(r.events, ev)
			r.ids = append(r.ids, strings.Clone(ev.UUID))
			return nil
		},
		undecodable: func(u UndecodableEvent, raw []byte) {
			r.undecodable = append(r.undecodable, u)
			if u.UUID != "" {
				r.ids = append(r.ids, u.UUID)
			} else {
				sum := sha256.Sum256(raw)
				r.ids = append(r.ids, "sha256:"+hex.EncodeToString(sum[:]))
			}
		},
	})
	r.total, r.retries, r.err = count, retries, err
	return r
}

// pageBody is body asking for one page.
func pageBody(body map[string]any, page, limit int) map[string]any {
	b := maps.Clone(body)
	b["page"], b["limit"] = page, limit
	return b
}

func allIn(ids []string, set map[string]struct{}) bool {
	for _, id := range ids {
		if _, ok := set[id]; !ok {
			return false
		}
	}
	return true
}
