package misp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cenkalti/backoff/v5"
)

// UndecodableEvent is an event of a restSearch answer that could not be decoded (issue 19
// row 3: one attribute with `first_seen: "not-a-date"`). The search skips it and goes on with
// the others; the caller decides when to try it again, alone.
type UndecodableEvent struct {
	// UUID is the event's uuid, read from the undecodable event without its other fields; ""
	// when even that could not be read (the caller cannot know which event it was).
	UUID string
	// Err says why, naming the failing field ("field Event.Attribute[3].first_seen: ...").
	Err error
}

func (u UndecodableEvent) Error() string {
	if u.UUID == "" {
		return fmt.Sprintf("undecodable event (uuid unreadable): %v", u.Err)
	}
	return fmt.Sprintf("undecodable event %s: %v", u.UUID, u.Err)
}

func (u UndecodableEvent) Unwrap() error { return u.Err }

// Visitor receives what a streamed search reads, one event at a time.
type Visitor struct {
	// Request, when set, is called before every restSearch request the search sends (retries
	// and smaller pages included). A caller that orders its reads against other writers takes
	// its mark there: an event is read at its request, not when it is delivered.
	Request func()
	// Event receives each decoded event. An event of a page that failed part-way is
	// delivered again when the page is retried. An error stops the search and is returned
	// wrapped.
	Event func(ev *Event) error
	// Undecodable, when set, receives each event that could not be decoded (the search goes
	// on without it). Without it such events are only counted in SearchStats.
	Undecodable func(u UndecodableEvent)
	// PageEnd, when set, is called after each page whose events were all delivered, including
	// a page cut short by the size limit before it is asked again in smaller pages. An error
	// stops the search and is returned wrapped.
	PageEnd func() error
}

// errTooLarge is returned (wrapped) when a response body exceeds MaxResponseBytes.
var errTooLarge = errors.New("response too large")

// limitedBody reads at most max bytes of a response and then fails with errTooLarge instead of
// truncating silently.
type limitedBody struct {
	r    io.Reader
	left int64
	max  int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body of exactly max bytes from a larger one.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("%w: larger than %d bytes", errTooLarge, l.max)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// StreamEvents runs POST /events/restSearch as SearchEvents does, but decodes each response from
// the body stream one event at a time and hands every event to v.Event at once: memory holds
// the largest single event, never a page.
//
// An event that cannot be decoded is skipped and reported to v.Undecodable with its uuid and
// the failing field; the other events of its page are delivered. A response over
// MaxResponseBytes is asked again with half the page size (down to one event, the rest of the
// search keeps the smaller size); a single event over the limit is reported as undecodable.
func (c *Client) StreamEvents(ctx context.Context, filters map[string]any, pageSize int, v Visitor) (SearchStats, error) {
	stats := SearchStats{Total: -1, PageSize: pageSize}
	if err := checkStream(filters, pageSize, v); err != nil {
		return stats, err
	}
	body, err := streamBody(filters)
	if err != nil {
		return stats, err
	}
	err = c.streamFrom(ctx, body, pageSize, 0, map[string]struct{}{}, v, &stats)
	return stats, err
}

// checkStream validates the arguments of StreamEvents and ListEvents.
func checkStream(filters map[string]any, pageSize int, v Visitor) error {
	if v.Event == nil {
		return errors.New("search events: visitor without Event")
	}
	for _, k := range []string{"page", "limit"} {
		if _, ok := filters[k]; ok {
			return fmt.Errorf("search events: filter %q is not allowed, the client pages itself", k)
		}
	}
	if pageSize <= 0 {
		return fmt.Errorf("search events: page size %d: must be positive", pageSize)
	}
	return nil
}

// streamBody is the restSearch body of a paged search: the filters, json and a stable order.
func streamBody(filters map[string]any) (map[string]any, error) {
	body, err := searchBody(filters)
	if err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	if _, ok := body["order"]; !ok {
		body["order"] = searchOrder
	}
	return body, nil
}

// streamFrom pages the search body from the event at offset on, limit events per page, and
// delivers what it reads to v; delivered holds the ids of the events delivered so far.
//
// MISP's word on paging is not trusted: a full page made only of events already delivered
// means the server ignores "page" (it looped for ever), and X-Result-Count only ever grows
// and never ends a search on its own (a count too low silently truncated the run): only a
// short or empty page does. The uuids in delivered are copies: the decoded strings share each
// event's memory, which must not live as long as the search.
func (c *Client) streamFrom(ctx context.Context, body map[string]any, limit, offset int, delivered map[string]struct{}, v Visitor, stats *SearchStats) error {
	for {
		page := offset/limit + 1
		body["page"], body["limit"] = page, limit
		var (
			// inPage identifies what this page (this attempt) held: the uuids, and a hash
			// of each undecodable event without one.
			inPage   []string
			received int // events and undecodable events of this page (this attempt)
			repeated int
		)
		seen := func(id string) {
			if _, ok := delivered[id]; ok {
				repeated++
			}
			inPage = append(inPage, id)
		}
		merge := func() {
			for _, id := range inPage {
				delivered[id] = struct{}{}
			}
		}
		pv := pageVisitor{
			attempt: func() {
				inPage, received, repeated = inPage[:0], 0, 0
				if v.Request != nil {
					v.Request()
				}
			},
			event: func(ev *Event) error {
				received++
				seen(strings.Clone(ev.UUID))
				if err := v.Event(ev); err != nil {
					return &handlerError{err}
				}
				stats.Events++
				return nil
			},
			undecodable: func(u UndecodableEvent, raw []byte) {
				received++
				if u.UUID != "" {
					seen(u.UUID)
				} else {
					sum := sha256.Sum256(raw)
					seen("sha256:" + hex.EncodeToString(sum[:]))
				}
				stats.Undecodable++
				if v.Undecodable != nil {
					v.Undecodable(u)
				}
			},
		}
		pv.count = func(n int) {
			stats.Total = max(stats.Total, n)
			if report, ok := ctx.Value(searchTotalKey{}).(func(int)); ok {
				report(stats.Total)
			}
		}
		_, retries, err := c.searchWithRetry(ctx, body, pv)
		stats.Retries += retries
		if (err == nil || errors.Is(err, errTooLarge)) && v.PageEnd != nil {
			if perr := v.PageEnd(); perr != nil {
				return fmt.Errorf("handle events page %d: %w", page, perr)
			}
		}
		var he *handlerError
		switch {
		case errors.As(err, &he):
			return fmt.Errorf("handle events page %d: %w", page, he.err)
		case errors.Is(err, errTooLarge) && limit > 1:
			stats.PageSize = max(limit/2, 1)
			stats.Shrunk++
			merge()
			// Re-read from the first event this page had not delivered; the next page may
			// start a little earlier (offset is rounded down to the new size) and deliver
			// a few events twice, which applying again leaves unchanged.
			offset = max(offset, (page-1)*limit+received)
			limit = max(limit/2, 1)
			continue
		case errors.Is(err, errTooLarge):
			// One event alone is over the limit: learn which from its metadata and skip it.
			u, merr := c.tooLargeEvent(ctx, body, err)
			if merr != nil {
				return fmt.Errorf("search events page %d (limit 1): %w; and identifying the event: %w", page, err, merr)
			}
			merge()
			stats.Undecodable++
			if v.Undecodable != nil {
				v.Undecodable(u)
			}
			offset = page // past the event, at limit 1
			continue
		case err != nil:
			return fmt.Errorf("search events page %d (limit %d): %w", page, limit, err)
		}
		// This page's first event is the one at offset (page*limit may be below a rounded
		// offset after shrinking: then the first events of the page were delivered before).
		skippedAhead := offset - (page-1)*limit
		if received >= limit && repeated == received && page > 1 && skippedAhead == 0 {
			return fmt.Errorf("search events page %d (limit %d): MISP returned only events of earlier pages: it ignores paging; stopping instead of looping", page, limit)
		}
		merge()
		if received > 0 {
			stats.Pages++
		}
		if received < limit {
			return nil
		}
		offset = page * limit
	}
}

// tooLargeEvent identifies the one event whose response exceeded the limit by asking for the
// same page with metadata only.
func (c *Client) tooLargeEvent(ctx context.Context, body map[string]any, cause error) (UndecodableEvent, error) {
	meta := make(map[string]any, len(body)+1)
	for k, val := range body {
		meta[k] = val
	}
	meta["metadata"] = true
	var found []string
	_, _, err := c.searchWithRetry(ctx, meta, pageVisitor{
		event:       func(ev *Event) error { found = append(found, strings.Clone(ev.UUID)); return nil },
		undecodable: func(u UndecodableEvent, _ []byte) { found = append(found, u.UUID) },
	})
	if err != nil {
		return UndecodableEvent{}, err
	}
	if len(found) != 1 {
		return UndecodableEvent{}, fmt.Errorf("the metadata of the page holds %d events, want 1", len(found))
	}
	return UndecodableEvent{UUID: found[0], Err: fmt.Errorf("event alone: %w (raise misp max response bytes)", cause)}, nil
}

// handlerError carries an error of the caller's callback through the retry loop unretried.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// pageVisitor receives one restSearch response as it is decoded.
type pageVisitor struct {
	attempt     func()      // before each request
	count       func(n int) // X-Result-Count, before the events; not called without one
	event       func(*Event) error
	undecodable func(u UndecodableEvent, raw []byte)
}

// searchWithRetry sends one restSearch request, retrying a 5xx, a broken body or a network
// error with exponential backoff. It returns X-Result-Count (-1 when absent) and the number
// of retries. A response over the size limit is not retried (errTooLarge).
func (c *Client) searchWithRetry(ctx context.Context, body map[string]any, pv pageVisitor) (int, int, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return -1, 0, fmt.Errorf("encode filters: %w", err)
	}
	attempts := 0
	op := func() (int, error) {
		attempts++
		if pv.attempt != nil {
			pv.attempt()
		}
		count, err := c.searchOnce(ctx, payload, pv)
		if err == nil {
			return count, nil
		}
		if retryable(ctx, err) {
			return -1, err
		}
		return -1, backoff.Permanent(err)
	}
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = c.interval
	eb.MaxInterval = 30 * c.interval
	count, err := backoff.Retry(ctx, op,
		backoff.WithBackOff(eb), backoff.WithMaxTries(uint(c.attempts)), backoff.WithMaxElapsedTime(0))
	if err != nil && attempts > 1 {
		err = fmt.Errorf("after %d attempts: %w", attempts, err)
	}
	return count, attempts - 1, err
}

// searchOnce sends one restSearch request and streams its answer to pv.
func (c *Client) searchOnce(ctx context.Context, payload []byte, pv pageVisitor) (int, error) {
	resp, err := c.send(ctx, http.MethodPost, "/events/restSearch", payload)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	count := -1
	if v := resp.Header.Get("X-Result-Count"); v != "" {
		if n, perr := strconv.Atoi(strings.TrimSpace(v)); perr == nil && n >= 0 {
			count = n
		}
	}
	if count >= 0 && pv.count != nil {
		pv.count(count)
	}
	err = decodeStream(&limitedBody{r: resp.Body, left: c.maxBody, max: c.maxBody}, pv)
	var he *handlerError
	switch {
	case err == nil:
		return count, nil
	case errors.As(err, &he), errors.Is(err, errTooLarge):
		return -1, err
	case ctx.Err() != nil:
		return -1, ctx.Err()
	}
	return -1, &transientError{fmt.Errorf("decode response: %w", err)}
}

// decodeStream reads a restSearch answer, {"response": [{"Event": {...}}, ...]} (or a bare
// list of events), one event at a time. A syntax error anywhere fails the whole answer (it is
// retried); an element that is valid JSON but not a decodable event is reported to
// pv.undecodable and skipped.
func decodeStream(r io.Reader, pv pageVisitor) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return emptyAsError(err)
	}
	switch tok {
	case json.Delim('['):
		if err := decodeElements(dec, pv); err != nil {
			return err
		}
	case json.Delim('{'):
		found := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			if key == "response" && !found {
				found = true
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				if tok != json.Delim('[') {
					return fmt.Errorf("response is %v, not a list of events", describeToken(tok))
				}
				if err := decodeElements(dec, pv); err != nil {
					return err
				}
				continue
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w (expected {\"response\": [...]})", ErrNoEvent)
		}
	default:
		return fmt.Errorf("answer is %v, not a JSON object or list", describeToken(tok))
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errTrailingData
		}
		return err
	}
	return nil
}

// decodeElements reads the events of an open list and its closing bracket.
func decodeElements(dec *json.Decoder, pv pageVisitor) error {
	for dec.More() {
		var raw json.RawMessage // a fresh buffer: the decoded event keeps it
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		ev, err := DecodeEvent(raw)
		if err != nil {
			pv.undecodable(UndecodableEvent{UUID: rawUUID(raw), Err: err}, raw)
			continue
		}
		if err := pv.event(ev); err != nil {
			return err
		}
	}
	_, err := dec.Token() // ']'
	return err
}

// rawUUID reads the uuid of an event that failed to decode, or "" when it has none that
// looks like an event reference.
func rawUUID(raw []byte) string {
	var ev struct {
		Event struct {
			UUID json.RawMessage `json:"uuid"`
		} `json:"Event"`
		UUID json.RawMessage `json:"uuid"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return ""
	}
	for _, r := range []json.RawMessage{ev.Event.UUID, ev.UUID} {
		var s string
		if json.Unmarshal(r, &s) == nil && checkEventRef(s) == nil {
			return s
		}
	}
	return ""
}

func emptyAsError(err error) error {
	if err == io.EOF {
		return errors.New("empty body")
	}
	return err
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return "a " + map[json.Delim]string{'{': "object", '[': "list"}[t]
	case string:
		return "a string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("a %T", t)
	}
}

// readSmall reads a whole (small) body, at most max bytes.
func readSmall(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(&limitedBody{r: r, left: max, max: max})
	return buf.Bytes(), err
}
