package misp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// FaultKind is a failure the simulator can inject into a REST answer.
type FaultKind int

const (
	// FaultServerError answers 500 with MISP's JSON error body.
	FaultServerError FaultKind = iota + 1
	// FaultBrokenJSON answers 200 with a response cut off in the middle of the JSON.
	FaultBrokenJSON
	// FaultHang holds the request until the client gives up (its context or timeout).
	FaultHang
)

// Fault makes restSearch requests for one page fail.
type Fault struct {
	// Page is the restSearch page the fault applies to; 0 matches every request.
	Page int
	Kind FaultKind
	// Times is how often the fault fires before the page is served normally again;
	// 0 or less fires on every request.
	Times int

	fired int
}

// Request is one request the simulator received, recorded for assertions.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// maxRecordedRequests bounds the request log (the oldest entries are dropped).
const maxRecordedRequests = 4096

// maxRequestBody bounds request bodies the simulator reads.
const maxRequestBody = 8 << 20

// InjectFault adds a fault to restSearch answers.
func (m *MISP) InjectFault(f Fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = append(m.faults, &f)
}

// ClearFaults removes every injected fault and the latency.
func (m *MISP) ClearFaults() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = nil
	m.latency = 0
}

// SetLatency delays every answer by d.
func (m *MISP) SetLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latency = d
}

// Requests returns the requests received so far, at most the last 4096 (API key headers
// included, as sent).
func (m *MISP) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

// Handler returns the REST API as an http.Handler (Start serves it on loopback).
func (m *MISP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events/restSearch", m.restSearch)
	mux.HandleFunc("POST /attributes/restSearch", m.attributeSearch)
	mux.HandleFunc("GET /events/view/{id}", m.view)
	mux.HandleFunc("HEAD /events/view/{id}", m.view)
	mux.HandleFunc("GET /servers/getVersion", m.version)
	mux.HandleFunc("GET /decayingModel/view/{id}", m.decayingModelView)
	mux.HandleFunc("GET /decayingModel/index", m.decayingModelIndex)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "Could not read the request body.")
			return
		}
		if len(body) > maxRequestBody {
			writeError(w, r, http.StatusRequestEntityTooLarge, "Request body too large.")
			return
		}
		m.mu.Lock()
		if len(m.requests) >= maxRecordedRequests {
			m.requests = slices.Delete(m.requests, 0, len(m.requests)-maxRecordedRequests+1)
		}
		m.requests = append(m.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		latency := m.latency
		m.mu.Unlock()
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if !m.authorized(r) {
			writeError(w, r, http.StatusForbidden, "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.")
			return
		}
		if !strings.Contains(r.Header.Get("Accept"), "application/json") {
			// Real MISP answers non-JSON clients with its HTML UI; refuse loudly instead.
			http.Error(w, "simulated MISP: send Accept: application/json", http.StatusNotAcceptable)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		mux.ServeHTTP(countingWriter{w, &m.served}, r)
	})
}

// SetSearchLatency replaces Options.SearchLatency from the next restSearch on (a benchmark
// prepares at full speed, then measures against a realistic MISP).
func (m *MISP) SetSearchLatency(l SearchLatency) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.SearchLatency = l
}

// BytesServed returns the response body bytes the REST API has written so far (what a
// benchmark counts as MISP bytes transferred).
func (m *MISP) BytesServed() int64 { return m.served.Load() }

// countingWriter adds what it writes to n.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// Flush passes a flush through, so that a streamed answer stays streamed.
func (c countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

var keyShape = regexp.MustCompile(`^[a-zA-Z0-9]{40}$`)

// authorized applies AppController::__loginByAuthKey: Authorization or X-MISP-AUTH, a
// comma-separated list tried in turn, values starting with Basic ignored.
func (m *MISP) authorized(r *http.Request) bool {
	for _, h := range []string{"Authorization", "X-MISP-AUTH"} {
		v := r.Header.Get(h)
		if v == "" || strings.HasPrefix(v, "Basic") {
			continue
		}
		for _, key := range strings.Split(v, ",") {
			key = strings.TrimSpace(key)
			if keyShape.MatchString(key) && key == m.opts.Key {
				return true
			}
		}
	}
	return false
}

// writeError writes MISP's exception body: {"name", "message", "url"}.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"name": msg, "message": msg, "url": r.URL.Path})
}

func (m *MISP) version(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"version": m.opts.Version, "pymisp_recommended_version": m.opts.Version,
		"perm_sync": false, "perm_sighting": false, "perm_galaxy_editor": false,
		"request_encoding": []string{"gzip"}, "filter_sightings": true,
	})
}

func (m *MISP) view(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	m.mu.Lock()
	ev := m.events[id]
	if ev == nil {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			for _, e := range m.events {
				if e.id == n {
					ev = e
					break
				}
			}
		}
	}
	if ev != nil {
		ev = ev.clone()
	}
	m.mu.Unlock()
	if ev == nil {
		writeError(w, r, http.StatusNotFound, "Invalid event")
		return
	}
	body, err := wrapEvent(ev, encodeOptions{keep: func(a *attribute) bool { return !a.deleted }})
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func (m *MISP) restSearch(w http.ResponseWriter, r *http.Request) {
	f, ok := m.readSearch(w, r)
	if !ok {
		return
	}

	m.mu.Lock()
	lat := m.opts.SearchLatency
	fault := m.takeFault(f.page)
	evs := m.sortedEvents()
	f.sort(evs)
	var matched []*event
	for _, ev := range evs {
		if m.matches(f, ev) {
			matched = append(matched, ev)
		}
	}
	total := len(matched)
	page := matched
	if f.limit > 0 {
		start := min((f.page-1)*f.limit, len(matched))
		page = matched[start:min(start+f.limit, len(matched))]
	}
	for i, ev := range page {
		page[i] = ev.clone()
	}
	keep := m.attributeFilter(f)
	var decay *decayScorer
	if f.decayScore {
		decay = m.decayScorer()
	}
	m.mu.Unlock()

	if fault != nil {
		switch fault.Kind {
		case FaultServerError:
			writeError(w, r, http.StatusInternalServerError, "An Internal Error Has Occurred.")
			return
		case FaultHang:
			<-r.Context().Done()
			return
		}
	}
	if lat != (SearchLatency{}) {
		attributes := 0
		if !f.metadata {
			for _, ev := range page {
				attributes += ev.attributeCount()
			}
		}
		m.opts.Sleep(r.Context(), lat.For(len(page), attributes))
		if r.Context().Err() != nil {
			return
		}
	}
	count := len(page)
	if f.limit > 0 {
		count = total
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Result-Count", strconv.Itoa(count))
	w.Header().Set("X-Export-Module-Used", "json")
	w.Header().Set("X-Response-Format", "json")
	w.Header().Set("X-Skipped-Elements-Count", "0")

	buf := append(make([]byte, 0, 64<<10), `{"response":[`...)
	for i, ev := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"Event":`...)
		var err error
		if buf, err = ev.appendJSON(buf, encodeOptions{metadata: f.metadata, shape: f.shape, keep: keep, decay: decay}); err != nil {
			return // headers are out; the cut-off body tells the client
		}
		buf = append(buf, '}')
		if fault != nil && fault.Kind == FaultBrokenJSON {
			_, _ = w.Write(buf[:len(buf)/2])
			return
		}
		if len(buf) > 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	if fault != nil && fault.Kind == FaultBrokenJSON {
		buf = append(buf, `{"Event":{"id":"`...)
		_, _ = w.Write(buf)
		return
	}
	buf = append(buf, "]}"...)
	_, _ = w.Write(buf)
}

// takeFault returns the fault that fires for this page, if any. m.mu must be held.
func (m *MISP) takeFault(page int) *Fault {
	for _, f := range m.faults {
		if f.Page != 0 && f.Page != page {
			continue
		}
		if f.Times > 0 && f.fired >= f.Times {
			continue
		}
		f.fired++
		return f
	}
	return nil
}

// ---- restSearch filters ----

// search holds the parsed events/restSearch parameters the simulator understands. Others
// are accepted and ignored, as MISP ignores parameters it does not know.
type search struct {
	tagsOR, tagsAND, tagsNOT []string
	eventIDs                 []int64
	uuids                    []string
	published                *bool
	timestamp, publishTS     *[2]int64
	toIDs                    *bool
	types, values            []string
	warninglist              bool
	deleted                  int // 0 active only, 1 deleted only, 2 both
	metadata                 bool
	shape                    shape
	page, limit              int
	orderField               string
	orderDesc                bool
	decayScore               bool
}

func parseSearch(p map[string]json.RawMessage, now time.Time) (*search, error) {
	s := &search{page: 1, orderField: "id"}
	var err error
	for k, v := range p {
		switch k {
		case "returnFormat":
			var f string
			if json.Unmarshal(v, &f) != nil || f != "json" {
				return nil, fmt.Errorf("simulated MISP: only returnFormat json is implemented, got %s", v)
			}
		case "tags", "event_tags":
			err = s.parseTags(v)
		case "eventid":
			var ids []string
			if ids, err = stringList(v); err == nil {
				for _, id := range ids {
					n, perr := strconv.ParseInt(id, 10, 64)
					if perr != nil {
						return nil, fmt.Errorf("invalid eventid %q", id)
					}
					s.eventIDs = append(s.eventIDs, n)
				}
			}
		case "uuid":
			s.uuids, err = stringList(v)
		case "published":
			var b bool
			b, err = flexBool(v)
			s.published = &b
		case "timestamp", "event_timestamp":
			s.timestamp, err = parseTimeRange(v, now)
		case "publish_timestamp", "last":
			s.publishTS, err = parseTimeRange(v, now)
		case "to_ids":
			var b bool
			b, err = flexBool(v)
			s.toIDs = &b
		case "type":
			s.types, err = stringList(v)
		case "value":
			s.values, err = stringList(v)
		case "enforceWarninglist":
			s.warninglist, err = flexBool(v)
		case "metadata":
			s.metadata, err = flexBool(v)
		case "excludeGalaxy":
			s.shape.excludeGalaxy, err = flexBool(v)
		case "sgReferenceOnly":
			s.shape.sgReferenceOnly, err = flexBool(v)
		case "excludeLocalTags":
			s.shape.excludeLocalTags, err = flexBool(v)
		case "deleted":
			err = s.parseDeleted(v)
		case "page":
			s.page, err = flexPositive(v)
		case "limit":
			s.limit, err = flexPositive(v)
		case "order":
			err = s.parseOrder(v)
		case "includeDecayScore":
			s.decayScore, err = flexBool(v)
		}
		if err != nil {
			return nil, fmt.Errorf("invalid %s: %w", k, err)
		}
	}
	if s.page < 1 {
		s.page = 1
	}
	return s, nil
}

func flexPositive(v json.RawMessage) (int, error) {
	n, err := flexInt(v)
	if err != nil || n < 0 || n > 1<<31 {
		return 0, fmt.Errorf("want a non-negative integer, got %.40s", v)
	}
	return int(n), nil
}

// stringList reads a string, a number or a list of them.
func stringList(v json.RawMessage) ([]string, error) {
	if len(v) > 0 && v[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(v, &raws); err != nil {
			return nil, err
		}
		out := make([]string, 0, len(raws))
		for _, r := range raws {
			s, err := flexString(r)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := flexString(v)
	if err != nil || s == "" {
		return nil, err
	}
	return []string{s}, nil
}

// parseTags reads a tag, a list (entries starting with ! are negated) or
// {"OR": ..., "AND": ..., "NOT": ...}.
func (s *search) parseTags(v json.RawMessage) error {
	if len(v) > 0 && v[0] == '{' {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		for k, list := range m {
			names, err := stringList(list)
			if err != nil {
				return err
			}
			switch strings.ToUpper(k) {
			case "OR":
				s.tagsOR = append(s.tagsOR, names...)
			case "AND":
				s.tagsAND = append(s.tagsAND, names...)
			case "NOT":
				s.tagsNOT = append(s.tagsNOT, names...)
			default:
				return fmt.Errorf("unknown operator %q", k)
			}
		}
		return nil
	}
	names, err := stringList(v)
	if err != nil {
		return err
	}
	for _, n := range names {
		if neg, ok := strings.CutPrefix(n, "!"); ok {
			s.tagsNOT = append(s.tagsNOT, neg)
		} else {
			s.tagsOR = append(s.tagsOR, n)
		}
	}
	return nil
}

func (s *search) parseDeleted(v json.RawMessage) error {
	if len(v) > 0 && v[0] == '[' {
		s.deleted = 2
		return nil
	}
	if str, _ := flexString(v); str == "only" {
		s.deleted = 1
		return nil
	}
	b, err := flexBool(v)
	if b {
		s.deleted = 1
	}
	return err
}

func (s *search) parseOrder(v json.RawMessage) error {
	var o string
	if err := json.Unmarshal(v, &o); err != nil {
		return err
	}
	field, dir, _ := strings.Cut(strings.TrimSpace(o), " ")
	field = strings.TrimPrefix(field, "Event.")
	switch field {
	case "id", "timestamp", "publish_timestamp", "info", "date":
	default:
		return fmt.Errorf("order field %q is not sortable", field)
	}
	s.orderField = field
	s.orderDesc = strings.EqualFold(strings.TrimSpace(dir), "desc")
	return nil
}

func (s *search) sort(evs []*event) {
	key := func(e *event) int64 {
		switch s.orderField {
		case "timestamp":
			return e.timestamp
		case "publish_timestamp":
			return e.publishTimestamp
		}
		return e.id
	}
	slices.SortStableFunc(evs, func(a, b *event) int {
		var c int
		switch s.orderField {
		case "info":
			c = strings.Compare(a.info, b.info)
		case "date":
			c = strings.Compare(a.date, b.date)
		default:
			c = cmpInt(key(a), key(b))
		}
		if c == 0 {
			c = cmpInt(a.id, b.id)
		}
		if s.orderDesc {
			return -c
		}
		return c
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

var relativeTime = regexp.MustCompile(`^(\d+)([dhms])$`)

// parseTimeRange reads MISP's time filter forms (AppModel::resolveTimeDelta): an epoch, a
// relative "<n>d|h|m|s", a date or RFC 3339 time, or [from, to]. An unreadable string becomes
// now+1, which matches nothing, as in MISP.
func parseTimeRange(v json.RawMessage, now time.Time) (*[2]int64, error) {
	if len(v) > 0 && v[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(v, &raws); err != nil {
			return nil, err
		}
		if len(raws) != 2 {
			return nil, errors.New("a range has two elements")
		}
		from, err := resolveTime(raws[0], now)
		if err != nil {
			return nil, err
		}
		to, err := resolveTime(raws[1], now)
		if err != nil {
			return nil, err
		}
		if from > to {
			from, to = to, from
		}
		return &[2]int64{from, to}, nil
	}
	from, err := resolveTime(v, now)
	if err != nil {
		return nil, err
	}
	return &[2]int64{from, 1<<62 - 1}, nil
}

func resolveTime(v json.RawMessage, now time.Time) (int64, error) {
	s, err := flexString(v)
	if err != nil {
		return 0, err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if m := relativeTime.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second}[m[2]]
		return now.Add(-time.Duration(n) * unit).Unix(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), nil
		}
	}
	return now.Unix() + 1, nil
}

// tagMatch compares tag names as MySQL's LIKE does with MISP's default collation:
// case-insensitive, % matching any run of characters.
func tagMatch(pattern, name string) bool {
	pattern, name = strings.ToLower(pattern), strings.ToLower(name)
	if !strings.Contains(pattern, "%") {
		return pattern == name
	}
	parts := strings.Split(pattern, "%")
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, part := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, part)
		}
		idx := strings.Index(name, part)
		if idx < 0 {
			return false
		}
		name = name[idx+len(part):]
	}
	return true
}

func hasTag(tags []*tag, pattern string) bool {
	for _, t := range tags {
		if tagMatch(pattern, t.name) {
			return true
		}
	}
	return false
}

// attributeFilter returns the attributes restSearch keeps inside a returned event: active
// (per deleted), matching to_ids, type and value, not carrying a NOT tag and, with
// enforceWarninglist, not on the warninglist. m.mu must be held.
func (m *MISP) attributeFilter(f *search) func(a *attribute) bool {
	return func(a *attribute) bool {
		if !m.attributeMatches(f, a) {
			return false
		}
		if f.warninglist && m.onWarninglist(a) {
			return false
		}
		return true
	}
}

func (m *MISP) attributeMatches(f *search, a *attribute) bool {
	switch f.deleted {
	case 0:
		if a.deleted {
			return false
		}
	case 1:
		if !a.deleted {
			return false
		}
	}
	if f.toIDs != nil && a.toIDs != *f.toIDs {
		return false
	}
	if f.types != nil && !slices.Contains(f.types, a.typ) {
		return false
	}
	if f.values != nil && !slices.Contains(f.values, a.value) {
		return false
	}
	for _, t := range f.tagsNOT {
		if hasTag(a.tags, t) {
			return false
		}
	}
	return true
}

func (m *MISP) onWarninglist(a *attribute) bool {
	if m.warninglist[a.value] {
		return true
	}
	if left, right, ok := strings.Cut(a.value, "|"); ok {
		return m.warninglist[left] || m.warninglist[right]
	}
	return false
}

// matches reports whether restSearch returns ev. Tag filters look at event tags and at the
// tags of the event's attributes; a NOT tag on the event excludes it. Attribute filters
// (to_ids, type, value) require at least one matching attribute. m.mu must be held.
func (m *MISP) matches(f *search, ev *event) bool {
	if f.eventIDs != nil && !slices.Contains(f.eventIDs, ev.id) {
		return false
	}
	if f.uuids != nil && !slices.ContainsFunc(f.uuids, func(u string) bool { return strings.EqualFold(u, ev.uuid) }) {
		return false
	}
	if f.published != nil && ev.published != *f.published {
		return false
	}
	if r := f.timestamp; r != nil && (ev.timestamp < r[0] || ev.timestamp > r[1]) {
		return false
	}
	if r := f.publishTS; r != nil && (ev.publishTimestamp < r[0] || ev.publishTimestamp > r[1]) {
		return false
	}
	for _, t := range f.tagsNOT {
		if hasTag(ev.tags, t) {
			return false
		}
	}
	anyTag := func(pattern string) bool {
		if hasTag(ev.tags, pattern) {
			return true
		}
		found := false
		ev.eachAttribute(func(a *attribute) {
			if !found && !a.deleted && hasTag(a.tags, pattern) {
				found = true
			}
		})
		return found
	}
	if f.tagsOR != nil && !slices.ContainsFunc(f.tagsOR, anyTag) {
		return false
	}
	for _, t := range f.tagsAND {
		if !anyTag(t) {
			return false
		}
	}
	if f.toIDs != nil || f.types != nil || f.values != nil || f.deleted == 1 {
		found := false
		ev.eachAttribute(func(a *attribute) {
			if !found && m.attributeMatches(f, a) {
				found = true
			}
		})
		if !found {
			return false
		}
	}
	return true
}

// readSearch reads a restSearch body as MISP does (the filters at the top level or under
// "request") and answers 400 with MISP's messages when it is not JSON, empty or invalid.
func (m *MISP) readSearch(w http.ResponseWriter, r *http.Request) (*search, bool) {
	body, _ := io.ReadAll(r.Body)
	params := map[string]json.RawMessage{}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &params); err != nil {
			writeError(w, r, http.StatusBadRequest, "Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON string.")
			return nil, false
		}
	}
	if inner, ok := params["request"]; ok {
		params = map[string]json.RawMessage{}
		if err := json.Unmarshal(inner, &params); err != nil {
			writeError(w, r, http.StatusBadRequest, "Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON string.")
			return nil, false
		}
	}
	if len(params) == 0 {
		writeError(w, r, http.StatusBadRequest, "Either specify the search terms in the url, or POST a json with the filter parameters.")
		return nil, false
	}
	f, err := parseSearch(params, m.now())
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return f, true
}
