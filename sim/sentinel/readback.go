package sentinel

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The management (ARM) read-back routes of shared/spec/sentinel-api.md §5.1, §5.2 and §10.4:
// queryIndicators (stable), GET and DELETE of one indicator, the preview STIX-object query and
// count, and DELETE of a STIX object by its resource id. They read the objects the upload
// routes stored, through the visibility lag.

// Read-back api-versions the simulator accepts.
var (
	// IndicatorsAPIVersions are the stable SecurityInsights versions of queryIndicators and
	// indicators/{name} (§5.1).
	IndicatorsAPIVersions = []string{"2021-10-01", "2022-10-01-preview", "2023-02-01", "2023-11-01", "2024-03-01", "2024-09-01", "2025-03-01", "2025-06-01", "2025-09-01"}
	// QueryAPIVersions are the preview versions of the STIX-object query and count (§5.2).
	QueryAPIVersions = []string{"2025-07-01-preview", "2025-10-01-preview"}
)

const (
	armProvider = "/providers/Microsoft.SecurityInsights/"
	// DefaultReadPageSize is the page size of queryIndicators when the body names none
	// (the real default is undocumented); MaxReadPageSize caps pageSize and maxPageSize.
	DefaultReadPageSize = 100
	MaxReadPageSize     = 1000
)

// readState is the read-back routes' configuration and counters, under Server.mu.
type readState struct {
	lag         time.Duration
	showDeleted bool
	// throttle answers the next throttle read requests 429 with Retry-After.
	throttle      int
	throttleAfter time.Duration
	stats         ReadStats
}

// ReadStats counts what the read-back routes answered.
type ReadStats struct {
	Requests  int // every request that reached a read-back route
	Throttled int // 429
	Pages     int // 200 answers of a query (first page or later)
	Deletes   int // objects deleted through the management API
}

// ReadStats returns a snapshot of the read-back counters.
func (s *Server) ReadStats() ReadStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads.stats
}

// SetVisibilityLag changes Options.VisibilityLag.
func (s *Server) SetVisibilityLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads.lag = d
}

// SetQueryShowsDeleted changes Options.QueryShowsDeleted.
func (s *Server) SetQueryShowsDeleted(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads.showDeleted = on
}

// ThrottleReads answers the next n read-back requests 429 with Retry-After: after (whole
// seconds, at least 1) and ARM's error body.
func (s *Server) ThrottleReads(n int, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads.throttle, s.reads.throttleAfter = n, after
}

// ARMPath returns the management path of a workspace's threat-intelligence provider
// (…/workspaces/{name}/providers/Microsoft.SecurityInsights), without a trailing slash, or ""
// for an unknown workspace.
func (s *Server) ARMPath(workspaceID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspaceID)]
	if !ok {
		return ""
	}
	return ws.armPath()
}

// Location returns the subscription, resource group and name of a workspace.
func (s *Server) Location(workspaceID string) (subscription, resourceGroup, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspaceID)]
	if !ok {
		return "", "", ""
	}
	return ws.sub, ws.rg, ws.name
}

func (ws *workspaceState) armPath() string {
	return "/subscriptions/" + ws.sub + "/resourceGroups/" + ws.rg +
		"/providers/Microsoft.OperationalInsights/workspaces/" + ws.name + "/providers/Microsoft.SecurityInsights"
}

// DeleteObject removes the object (sourceSystem, id) of a workspace behind the listener's
// back, as an analyst deleting it in the portal: every route forgets it. It reports whether
// the object existed.
func (s *Server) DeleteObject(workspace, sourceSystem, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspace)]
	if !ok {
		return false
	}
	key := ObjectKey(sourceSystem, id)
	_, found := ws.objects[key]
	delete(ws.objects, key)
	return found
}

// AlterObject changes the stored object (sourceSystem, id) of a workspace behind the
// listener's back, as an ingestion rule or a portal edit does: edit receives the STIX object
// as a map and changes it in place; the change is visible at once (no lag) and keeps the
// stored modified unless edit changes it. It reports whether the object existed.
func (s *Server) AlterObject(workspace, sourceSystem, id string, edit func(obj map[string]any)) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspace)]
	if !ok {
		return false, nil
	}
	rec, found := ws.objects[ObjectKey(sourceSystem, id)]
	if !found {
		return false, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(rec.Object, &obj); err != nil {
		return true, fmt.Errorf("sim sentinel: alter %s: %w", id, err)
	}
	edit(obj)
	b, err := json.Marshal(obj)
	if err != nil {
		return true, fmt.Errorf("sim sentinel: alter %s: %w", id, err)
	}
	rec.Object, rec.prior = b, nil
	if m, ok := obj["modified"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, m); err == nil {
			rec.Modified = t
		}
	}
	rec.Revoked, _ = obj["revoked"].(bool)
	rec.LastIngested = s.now().Add(-s.reads.lag)
	return true, nil
}

func (s *Server) routeReadBack(mux *http.ServeMux) {
	prefix := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}" + armProvider
	mux.HandleFunc("POST "+prefix+"threatIntelligence/main/queryIndicators", s.armHandler(IndicatorsAPIVersions, s.handleQueryIndicators))
	mux.HandleFunc("GET "+prefix+"threatIntelligence/main/indicators/{name}", s.armHandler(IndicatorsAPIVersions, s.handleGetIndicator))
	mux.HandleFunc("DELETE "+prefix+"threatIntelligence/main/indicators/{name}", s.armHandler(IndicatorsAPIVersions, s.handleDeleteIndicator))
	mux.HandleFunc("POST "+prefix+"threatIntelligence/main/query", s.armHandler(QueryAPIVersions, s.handleQuery))
	mux.HandleFunc("GET "+prefix+"threatIntelligence/main/query", s.armHandler(QueryAPIVersions, s.handleQuery))
	mux.HandleFunc("POST "+prefix+"threatIntelligence/main/count", s.armHandler(QueryAPIVersions, s.handleCount))
	mux.HandleFunc("DELETE "+prefix+"threatintelligence/{key...}", s.armHandler(QueryAPIVersions, s.handleDeleteObject))
}

// armRequest is an authenticated, authorised read-back request.
type armRequest struct {
	r   *http.Request
	ws  *workspaceState
	now time.Time
}

// armHandler checks the api-version, the token (a management audience), the workspace and
// the role, and applies injected throttling, before h runs.
func (s *Server) armHandler(versions []string, h func(http.ResponseWriter, armRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		s.mu.Lock()
		s.reads.stats.Requests++
		s.mu.Unlock()
		if v := r.URL.Query().Get("api-version"); !slices.Contains(versions, v) {
			writeARMError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
				fmt.Sprintf("The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(versions, ",")))
			return
		}
		tok, ok := s.authenticate(r, now)
		if !ok {
			writeARMError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is missing, invalid or expired, or its audience is not the management endpoint.")
			return
		}
		key := strings.ToLower(r.PathValue("sub") + "/" + r.PathValue("rg") + "/" + r.PathValue("ws"))
		s.mu.Lock()
		id, known := s.arm[key]
		ws := s.workspaces[id]
		allowed := known && (ws.contributors == nil || ws.contributors[tok.clientID])
		throttled, after := s.reads.throttle > 0, s.reads.throttleAfter
		if throttled {
			s.reads.throttle--
			s.reads.stats.Throttled++
		}
		s.mu.Unlock()
		switch {
		case !known:
			writeARMError(w, http.StatusNotFound, "ResourceNotFound",
				fmt.Sprintf("The Resource 'Microsoft.OperationalInsights/workspaces/%s' under resource group '%s' was not found.", r.PathValue("ws"), r.PathValue("rg")))
			return
		case !allowed:
			writeARMError(w, http.StatusForbidden, "AuthorizationFailed",
				fmt.Sprintf("The client '%s' does not have authorization to perform action 'Microsoft.SecurityInsights/threatIntelligence/read' over scope '%s'.", tok.clientID, ws.armPath()))
			return
		case throttled:
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(after.Round(time.Second)/time.Second))))
			writeARMError(w, http.StatusTooManyRequests, "TooManyRequests", "Number of read requests for subscription exceeded the limit; retry after the interval given in Retry-After.")
			return
		}
		h(w, armRequest{r: r, ws: ws, now: now})
	}
}

func writeARMError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

// visible returns the version of rec the read-back routes show at now, or nil when none
// is visible yet (or the object was deleted through the management API and deleted objects
// are not shown).
func (s *Server) visible(rec *Record, now time.Time, forQuery bool) *version {
	if rec.Deleted && !(forQuery && s.reads.showDeleted) {
		return nil
	}
	cur := &version{object: rec.Object, modified: rec.Modified, revoked: rec.Revoked, ingested: rec.LastIngested}
	if s.reads.lag <= 0 || !now.Before(cur.ingested.Add(s.reads.lag)) {
		return cur
	}
	if p := rec.prior; p != nil && !now.Before(p.ingested.Add(s.reads.lag)) {
		return p
	}
	return nil
}

// snapshot returns the visible objects of ws, sorted by key (a stable paging order).
func (s *Server) snapshot(ws *workspaceState, now time.Time, forQuery bool) []shown {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]shown, 0, len(ws.objects))
	for _, rec := range ws.objects {
		if v := s.visible(rec, now, forQuery); v != nil {
			var data map[string]any
			if json.Unmarshal(v.object, &data) != nil {
				continue
			}
			out = append(out, shown{rec: copyRecord(rec), v: *v, data: data})
		}
	}
	slices.SortFunc(out, func(a, b shown) int { return strings.Compare(a.rec.Key, b.rec.Key) })
	return out
}

// shown is one visible object.
type shown struct {
	rec  Record
	v    version
	data map[string]any
}

func (o shown) str(field string) string {
	v, _ := o.data[field].(string)
	return v
}

func (o shown) expired(now time.Time) bool {
	vu, err := time.Parse(time.RFC3339Nano, o.str("valid_until"))
	return err == nil && !vu.After(now)
}

// indicatorName is the GUID name the management API gives an object (derived from its key).
func indicatorName(key string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("sim-sentinel/"+key)).String()
}

// observablePattern finds the comparisons of a STIX pattern: object type, property path and
// quoted value.
var observablePattern = regexp.MustCompile(`([a-z0-9-]+):([A-Za-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'`)

// observables returns the (type, value) pairs of a STIX pattern, as Sentinel parses simple
// comparisons.
func observables(pattern string) [][2]string {
	var out [][2]string
	for _, m := range observablePattern.FindAllStringSubmatch(pattern, -1) {
		typ := m[1]
		if m[1] == "file" {
			typ = "file:" + m[2]
		}
		out = append(out, [2]string{typ, strings.ReplaceAll(m[3], `\'`, `'`)})
	}
	return out
}

// indicatorItem renders an object as queryIndicators and indicators/{name} do (§5.1).
func indicatorItem(ws *workspaceState, o shown) map[string]any {
	name := indicatorName(o.rec.Key)
	pattern := o.str("pattern")
	obs := observables(pattern)
	patternType := o.str("pattern_type")
	parsed := []map[string]any{}
	if len(obs) > 0 {
		patternType = obs[0][0]
		for _, ob := range obs {
			parsed = append(parsed, map[string]any{"patternTypeKey": ob[0], "patternTypeValues": []map[string]string{{"valueType": ob[0], "value": ob[1]}}})
		}
	}
	props := map[string]any{
		"source":             o.rec.SourceSystem,
		"displayName":        o.str("name"),
		"description":        o.str("description"),
		"externalId":         o.rec.ID,
		"pattern":            pattern,
		"patternType":        patternType,
		"patternVersion":     o.str("pattern_version"),
		"parsedPattern":      parsed,
		"validFrom":          o.str("valid_from"),
		"validUntil":         o.str("valid_until"),
		"created":            o.str("created"),
		"modified":           o.str("modified"),
		"lastUpdatedTimeUtc": o.v.ingested.UTC().Format(time.RFC3339Nano),
		"revoked":            o.v.revoked,
		"createdByRef":       o.str("created_by_ref"),
		"language":           o.str("lang"),
	}
	for stixKey, armKey := range map[string]string{
		"indicator_types": "threatTypes", "labels": "labels", "kill_chain_phases": "killChainPhases",
		"external_references": "externalReferences", "granular_markings": "granularMarkings",
		"object_marking_refs": "objectMarkingRefs", "confidence": "confidence", "extensions": "extensions",
	} {
		if v, ok := o.data[stixKey]; ok {
			props[armKey] = v
		}
	}
	if labels, ok := o.data["labels"]; ok {
		props["threatIntelligenceTags"] = labels
	}
	return map[string]any{
		"id":         ws.armPath() + "/ThreatIntelligence/" + name,
		"name":       name,
		"etag":       fmt.Sprintf("%q", strconv.FormatInt(o.v.ingested.UnixNano(), 16)),
		"type":       "Microsoft.SecurityInsights/ThreatIntelligence",
		"kind":       "indicator",
		"properties": props,
	}
}

// objectKinds maps STIX types to the kind of a TIObject (§5.2).
var objectKinds = map[string]string{
	"indicator": "Indicator", "attack-pattern": "AttackPattern", "threat-actor": "ThreatActor",
	"identity": "Identity", "relationship": "Relationship",
}

// tiObject renders an object as the preview query does (§5.2).
func tiObject(ws *workspaceState, o shown) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000") }
	props := map[string]any{
		"data":                   json.RawMessage(o.v.object),
		"source":                 o.rec.SourceSystem,
		"createdBy":              map[string]string{"objectId": "", "email": "", "name": ""},
		"lastModifiedBy":         map[string]string{"objectId": "", "email": "", "name": ""},
		"firstIngestedTimeUtc":   ts(o.rec.FirstIngested),
		"lastIngestedTimeUtc":    ts(o.v.ingested),
		"lastUpdatedDateTimeUtc": ts(o.v.ingested),
		"lastUpdateMethod":       "UploadApi",
		"ingestionRulesVersion":  "00000000-0000-0000-0000-000000000000",
		"relationshipHints":      nil,
	}
	if o.rec.Type == "indicator" {
		obs := []map[string]string{}
		for _, ob := range observables(o.str("pattern")) {
			obs = append(obs, map[string]string{"type": ob[0], "value": ob[1]})
		}
		props["observables"] = obs
	}
	return map[string]any{
		"id":         ws.armPath() + "/threatintelligence/" + o.rec.Key,
		"name":       o.rec.Key,
		"type":       "Microsoft.SecurityInsights/threatintelligence",
		"kind":       objectKinds[o.rec.Type],
		"properties": props,
	}
}

// queryIndicatorsBody is the request body of queryIndicators (all fields optional).
type queryIndicatorsBody struct {
	PageSize        int      `json:"pageSize"`
	MinValidUntil   string   `json:"minValidUntil"`
	MaxValidUntil   string   `json:"maxValidUntil"`
	IncludeDisabled bool     `json:"includeDisabled"`
	Sources         []string `json:"sources"`
	PatternTypes    []string `json:"patternTypes"`
	IDs             []string `json:"ids"`
	Keywords        []string `json:"keywords"`
	SkipToken       string   `json:"skipToken"`
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(body)) > 0 {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeARMError(w, http.StatusBadRequest, "BadRequest", "The request body is not valid JSON: "+truncate(err.Error(), 120))
		return false
	}
	return true
}

// skipOffset decodes an opaque skip token: the offset of the next page.
func skipOffset(token string) (int, bool) {
	if token == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	return n, err == nil && n >= 0
}

func skipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

// nextLink is the URL of the next page: the request's path with api-version and $skipToken.
func nextLink(r *http.Request, extra url.Values) string {
	q := url.Values{"api-version": {r.URL.Query().Get("api-version")}}
	for k, v := range extra {
		q[k] = v
	}
	return "https://" + r.Host + r.URL.Path + "?" + q.Encode()
}

func (s *Server) handleQueryIndicators(w http.ResponseWriter, a armRequest) {
	var q queryIndicatorsBody
	if !decodeBody(w, a.r, &q) {
		return
	}
	token := q.SkipToken
	if token == "" {
		token = a.r.URL.Query().Get("$skipToken")
	}
	// misp2sentinel passes the whole nextLink as skipToken: take the parameter out of it.
	if u, err := url.Parse(token); err == nil && u.Query().Get("$skipToken") != "" {
		token = u.Query().Get("$skipToken")
	}
	offset, ok := skipOffset(token)
	if !ok {
		writeARMError(w, http.StatusBadRequest, "BadRequest", "Invalid skipToken.")
		return
	}
	size := q.PageSize
	if size <= 0 {
		size = DefaultReadPageSize
	}
	size = min(size, MaxReadPageSize)
	var minVU, maxVU time.Time
	for _, b := range []struct {
		raw string
		t   *time.Time
	}{{q.MinValidUntil, &minVU}, {q.MaxValidUntil, &maxVU}} {
		if b.raw == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.raw)
		if err != nil {
			writeARMError(w, http.StatusBadRequest, "BadRequest", "Invalid date "+truncate(b.raw, 40))
			return
		}
		*b.t = t
	}
	var match []map[string]any
	for _, o := range s.snapshot(a.ws, a.now, true) {
		if o.rec.Type != "indicator" {
			continue
		}
		if !q.IncludeDisabled && (o.v.revoked || o.expired(a.now)) {
			continue
		}
		if len(q.Sources) > 0 && !slices.Contains(q.Sources, o.rec.SourceSystem) {
			continue
		}
		item := indicatorItem(a.ws, o)
		props := item["properties"].(map[string]any)
		if len(q.IDs) > 0 && !slices.Contains(q.IDs, item["name"].(string)) && !slices.Contains(q.IDs, o.rec.ID) {
			continue
		}
		if len(q.PatternTypes) > 0 && !slices.Contains(q.PatternTypes, props["patternType"].(string)) {
			continue
		}
		if len(q.Keywords) > 0 && !slices.ContainsFunc(q.Keywords, func(k string) bool {
			k = strings.ToLower(k)
			return strings.Contains(strings.ToLower(o.str("pattern")), k) || strings.Contains(strings.ToLower(o.str("name")), k)
		}) {
			continue
		}
		if vu, err := time.Parse(time.RFC3339Nano, o.str("valid_until")); err == nil {
			if (!minVU.IsZero() && vu.Before(minVU)) || (!maxVU.IsZero() && vu.After(maxVU)) {
				continue
			}
		}
		match = append(match, item)
	}
	s.writePage(w, a.r, match, offset, size, func(next int) string {
		return nextLink(a.r, url.Values{"$skipToken": {skipToken(next)}})
	})
}

// writePage answers one page of items from offset.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, items []map[string]any, offset, size int, link func(next int) string) {
	s.mu.Lock()
	s.reads.stats.Pages++
	s.mu.Unlock()
	end := min(len(items), offset+size)
	page := []map[string]any{}
	if offset < len(items) {
		page = items[offset:end]
	}
	body := map[string]any{"value": page}
	if end < len(items) {
		body["nextLink"] = link(end)
	}
	writeJSON(w, http.StatusOK, body)
}

// find returns the visible object of ws whose indicator name (or, with byKey, key) is name.
func (s *Server) find(ws *workspaceState, name string, now time.Time, byKey bool) (*Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range ws.objects {
		if (byKey && rec.Key == name) || (!byKey && strings.EqualFold(indicatorName(rec.Key), name)) {
			return rec, s.visible(rec, now, false) != nil
		}
	}
	return nil, false
}

func (s *Server) handleGetIndicator(w http.ResponseWriter, a armRequest) {
	name := a.r.PathValue("name")
	for _, o := range s.snapshot(a.ws, a.now, false) {
		if strings.EqualFold(indicatorName(o.rec.Key), name) && o.rec.Type == "indicator" {
			writeJSON(w, http.StatusOK, indicatorItem(a.ws, o))
			return
		}
	}
	writeARMError(w, http.StatusNotFound, "NotFound", "Threat intelligence indicator "+truncate(name, 80)+" not found.")
}

func (s *Server) handleDeleteIndicator(w http.ResponseWriter, a armRequest) {
	s.deleteBy(w, a, a.r.PathValue("name"), false)
}

func (s *Server) handleDeleteObject(w http.ResponseWriter, a armRequest) {
	s.deleteBy(w, a, a.r.PathValue("key"), true)
}

func (s *Server) deleteBy(w http.ResponseWriter, a armRequest, name string, byKey bool) {
	rec, visible := s.find(a.ws, name, a.now, byKey)
	if rec == nil || !visible {
		writeARMError(w, http.StatusNotFound, "NotFound", "Threat intelligence object "+truncate(name, 80)+" not found.")
		return
	}
	s.mu.Lock()
	rec.Deleted = true
	s.reads.stats.Deletes++
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// queryBody is the request body of the preview STIX-object query (§5.2).
type queryBody struct {
	Condition   queryCondition `json:"condition"`
	MaxPageSize int            `json:"maxPageSize"`
	MinPageSize int            `json:"minPageSize"`
}

type queryCondition struct {
	StixObjectType      string        `json:"stixObjectType"`
	Clauses             []queryClause `json:"clauses"`
	ConditionConnective string        `json:"conditionConnective"`
}

type queryClause struct {
	Field    string   `json:"field"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

// queryToken is the state a query's nextLink carries: the condition and the offset (the
// preview query pages by GET on nextLink, so the token must say what was asked).
type queryToken struct {
	Body   queryBody `json:"b"`
	Offset int       `json:"o"`
}

func (s *Server) handleQuery(w http.ResponseWriter, a armRequest) {
	var tok queryToken
	if a.r.Method == http.MethodGet {
		raw, err := base64.RawURLEncoding.DecodeString(a.r.URL.Query().Get("$skipToken"))
		if err != nil || json.Unmarshal(raw, &tok) != nil {
			writeARMError(w, http.StatusBadRequest, "BadRequest", "Invalid or missing $skipToken.")
			return
		}
	} else if !decodeBody(w, a.r, &tok.Body) {
		return
	}
	match, ok := s.evaluate(w, a, tok.Body.Condition)
	if !ok {
		return
	}
	size := tok.Body.MaxPageSize
	if size <= 0 {
		size = DefaultReadPageSize
	}
	size = min(size, MaxReadPageSize)
	items := make([]map[string]any, len(match))
	for i, o := range match {
		items[i] = tiObject(a.ws, o)
	}
	s.writePage(w, a.r, items, tok.Offset, size, func(next int) string {
		b, _ := json.Marshal(queryToken{Body: tok.Body, Offset: next})
		return nextLink(a.r, url.Values{"$skipToken": {base64.RawURLEncoding.EncodeToString(b)}})
	})
}

func (s *Server) handleCount(w http.ResponseWriter, a armRequest) {
	var body struct {
		Condition  *queryCondition `json:"condition"`
		Properties *struct {
			Condition queryCondition `json:"condition"`
		} `json:"properties"`
	}
	if !decodeBody(w, a.r, &body) {
		return
	}
	var cond queryCondition
	switch {
	case body.Properties != nil:
		cond = body.Properties.Condition
	case body.Condition != nil:
		cond = *body.Condition
	}
	match, ok := s.evaluate(w, a, cond)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"count": len(match)})
}

// evaluate returns the visible objects matching a query condition, or answers 400.
func (s *Server) evaluate(w http.ResponseWriter, a armRequest, c queryCondition) ([]shown, bool) {
	if len(c.Clauses) == 0 {
		writeARMError(w, http.StatusBadRequest, "BadRequest", "condition.clauses is required.")
		return nil, false
	}
	or := strings.EqualFold(c.ConditionConnective, "Or")
	var out []shown
	for _, o := range s.snapshot(a.ws, a.now, true) {
		if c.StixObjectType != "" && !strings.EqualFold(c.StixObjectType, o.rec.Type) {
			continue
		}
		all, any := true, false
		for _, cl := range c.Clauses {
			m, err := clauseMatches(cl, o)
			if err != nil {
				writeARMError(w, http.StatusBadRequest, "BadRequest", err.Error())
				return nil, false
			}
			all, any = all && m, any || m
		}
		if (or && any) || (!or && all) {
			out = append(out, o)
		}
	}
	return out, true
}

func clauseMatches(cl queryClause, o shown) (bool, error) {
	var field string
	var at time.Time
	switch strings.ToLower(cl.Field) {
	case "source":
		field = o.rec.SourceSystem
	case "id":
		field = o.rec.ID
	case "pattern":
		field = o.str("pattern")
	case "lastupdatedtimeutc":
		at = o.v.ingested
	default:
		return false, fmt.Errorf("Unsupported field %q.", truncate(cl.Field, 40))
	}
	if len(cl.Values) == 0 {
		return false, fmt.Errorf("Clause on %q has no values.", cl.Field)
	}
	switch cl.Operator {
	case "Equals":
		return slices.Contains(cl.Values, field), nil
	case "NotEquals":
		return !slices.Contains(cl.Values, field), nil
	case "StringContains":
		return slices.ContainsFunc(cl.Values, func(v string) bool { return strings.Contains(strings.ToLower(field), strings.ToLower(v)) }), nil
	case "OnOrAfterAbsolute", "OnOrBeforeAbsolute":
		if at.IsZero() {
			return false, fmt.Errorf("Operator %s needs a time field.", cl.Operator)
		}
		t, err := time.Parse(time.RFC3339Nano, cl.Values[0])
		if err != nil {
			return false, fmt.Errorf("Invalid time %q.", truncate(cl.Values[0], 40))
		}
		if cl.Operator == "OnOrAfterAbsolute" {
			return !at.Before(t), nil
		}
		return !at.After(t), nil
	}
	return false, fmt.Errorf("Unsupported operator %q.", truncate(cl.Operator, 40))
}
