package defender

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/sim/window"
)

type operation string

const (
	opImport      operation = "import"
	opSubmit      operation = "submit"
	opList        operation = "list"
	opDelete      operation = "delete"
	opBatchDelete operation = "batchdelete"
)

// route dispatches on the path, whose fixed segments are matched case-insensitively, with
// the /api/v1.0/ alias.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := strings.ToLower(strings.TrimSuffix(r.URL.Path, "/"))
	p = strings.Replace(p, "/api/v1.0/", "/api/", 1)
	rest, ok := strings.CutPrefix(p, "/api/indicators")
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "General Not Found")
		return
	}
	var op operation
	id := ""
	switch {
	case rest == "" && r.Method == http.MethodGet:
		op = opList
	case rest == "" && r.Method == http.MethodPost:
		op = opSubmit
	case rest == "/import" && r.Method == http.MethodPost:
		op = opImport
	case rest == "/batchdelete" && r.Method == http.MethodPost:
		op = opBatchDelete
	case strings.HasPrefix(rest, "/") && strings.Count(rest, "/") == 1 && r.Method == http.MethodDelete:
		op, id = opDelete, rest[1:]
	default:
		writeError(w, http.StatusNotFound, "NotFound", "General Not Found")
		return
	}
	now := s.now()
	tok, status, code, msg := s.authorize(r, now)
	if status != 0 {
		writeError(w, status, code, msg)
		return
	}
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if wait, throttled := s.admit(tok.ClientID, op, now); throttled {
		if !s.opts.OmitRetryAfter {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		}
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", "API calls quota exceeded! Maximum allowed calls reached, try again later.")
		return
	}
	if s.chance(f.ServerErrorRate) {
		s.serverError(w, f)
		return
	}
	var body map[string]json.RawMessage
	if op == opImport || op == opSubmit || op == opBatchDelete {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json")
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
		if err != nil || json.Unmarshal(raw, &body) != nil || body == nil {
			writeError(w, http.StatusBadRequest, "InvalidRequestBody", "Invalid request body.")
			return
		}
	}
	lost := op != opList && s.chance(f.LostResponseRate)
	rec := &recorder{w: w}
	if lost {
		rec = &recorder{}
	}
	owner := !slices.Contains(s.roles(tok.ClientID), RoleReadWriteA)
	switch op {
	case opImport:
		s.handleImport(rec, tok.ClientID, body, now)
	case opSubmit:
		s.handleSubmit(rec, tok.ClientID, body, now)
	case opBatchDelete:
		s.handleBatchDelete(rec, tok.ClientID, owner, body)
	case opDelete:
		s.handleDelete(rec, tok.ClientID, owner, id)
	case opList:
		s.handleList(rec, r, tok.ClientID, owner)
	}
	if lost {
		s.serverError(w, f)
	}
}

// recorder lets a handler's answer be discarded (a lost response).
type recorder struct{ w http.ResponseWriter }

func (r *recorder) json(status int, v any) {
	if r.w != nil {
		writeJSON(r.w, status, v)
	}
}

func (r *recorder) error(status int, code, msg string) {
	if r.w != nil {
		writeError(r.w, status, code, msg)
	}
}

func (r *recorder) noContent() {
	if r.w != nil {
		r.w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) serverError(w http.ResponseWriter, f Faults) {
	s.count(func(st *Stats) { st.InjectedErrors++ })
	if f.EmptyServerErrors {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeError(w, http.StatusInternalServerError, "InternalServerError", "")
}

// xdrScope is the newer resource whose tokens the indicator API may refuse (spec §1.2).
const xdrScope = "https://api.security.microsoft.com/.default"

// authorize checks the bearer token's validity, audience and roles.
func (s *Server) authorize(r *http.Request, now time.Time) (tok simsentinel.Token, status int, code, msg string) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return tok, http.StatusUnauthorized, "Unauthorized", "Unauthorized (missing authorization header)"
	}
	tok, ok = s.Entra.LookupToken(raw, now)
	if !ok || !slices.Contains(simsentinel.DefenderScopes, tok.Scope) {
		return tok, http.StatusUnauthorized, "Unauthorized", "Unauthorized (invalid or expired authorization header)"
	}
	if tok.Scope == xdrScope && s.opts.RefuseXDRAudience {
		return tok, http.StatusForbidden, "Forbidden", "Forbidden: the token audience is not accepted by this API"
	}
	roles := s.roles(tok.ClientID)
	if !slices.Contains(roles, RoleReadWrite) && !slices.Contains(roles, RoleReadWriteA) {
		return tok, http.StatusForbidden, "Forbidden", "Forbidden (valid token but insufficient permission for the action)"
	}
	return tok, 0, "", ""
}

func (s *Server) roles(clientID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.opts.Roles[clientID]; ok {
		return r
	}
	return []string{RoleReadWriteA}
}

// admit applies the sliding-window limits of (client, call type); rejected calls are not
// counted.
func (s *Server) admit(clientID string, op operation, now time.Time) (time.Duration, bool) {
	minute := s.Minute()
	var limits []window.Limit
	switch op {
	case opImport:
		limits = []window.Limit{{N: s.opts.ImportPerMinute, Per: minute}}
	case opBatchDelete:
		limits = []window.Limit{{N: s.opts.DeletePerMinute, Per: minute}, {N: s.opts.DeletePerHour, Per: 60 * minute}}
	default:
		limits = []window.Limit{{N: s.opts.ListPerMinute, Per: minute}, {N: s.opts.ListPerHour, Per: 60 * minute}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wait, ok := s.windows.Admit(clientID+"/"+string(op), now, limits...)
	if !ok {
		s.stats.Throttled++
		return max(wait, time.Second), true
	}
	return 0, false
}

func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

type importItem struct {
	ID            *string `json:"id"`
	Indicator     string  `json:"indicator"`
	IsFailed      bool    `json:"isFailed"`
	FailureReason *string `json:"failureReason"`
}

func (s *Server) handleImport(w *recorder, clientID string, body map[string]json.RawMessage, now time.Time) {
	raw, ok := body["Indicators"]
	if !ok {
		w.error(http.StatusBadRequest, "MissingRequiredParameter", "Parameter Indicators is missing.")
		return
	}
	var items []map[string]json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		w.error(http.StatusBadRequest, "InvalidRequestBody", "Invalid request body.")
		return
	}
	if len(items) > MaxBatch {
		w.error(http.StatusBadRequest, "MaximumBatchSizeExceeded", fmt.Sprintf("Maximum batch size exceeded. Received: %d, allowed: %d.", len(items), MaxBatch))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Imports++
	s.expire()
	parsed := make([]Indicator, len(items))
	problems := make([]string, len(items))
	newKeys := map[string]bool{}
	for i, it := range items {
		parsed[i], problems[i] = s.validate(it, now)
		if problems[i] == "" {
			k := keyOf(parsed[i].IndicatorType, parsed[i].IndicatorValue, parsed[i].Action)
			if s.byKey[k] == nil {
				newKeys[k] = true
			}
		}
	}
	if s.capMode == CapWholeRequest && len(s.byID)+len(newKeys) > s.cap {
		s.stats.CapRefusals++
		w.error(http.StatusBadRequest, "BadRequest", CapReason)
		return
	}
	out := make([]importItem, len(items))
	for i, ind := range parsed {
		out[i].Indicator = ind.IndicatorValue
		if problems[i] == "" && s.byKey[keyOf(ind.IndicatorType, ind.IndicatorValue, ind.Action)] == nil && len(s.byID) >= s.cap {
			problems[i] = CapReason
			s.stats.CapRefusals++
		}
		if problems[i] != "" {
			s.stats.ItemFailures++
			out[i].IsFailed, out[i].FailureReason = true, &problems[i]
			continue
		}
		ind.CreatedBy, ind.CreatedBySource = clientID, "PublicApi"
		stored, _ := s.storeLocked(ind, now)
		id := stored.ID
		out[i].ID = &id
	}
	w.json(http.StatusOK, map[string]any{"value": out})
}

func (s *Server) handleSubmit(w *recorder, clientID string, body map[string]json.RawMessage, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Submits++
	s.expire()
	ind, problem := s.validate(body, now)
	if problem != "" {
		s.stats.ItemFailures++
		w.error(http.StatusBadRequest, "InvalidInput", problem)
		return
	}
	if s.byKey[keyOf(ind.IndicatorType, ind.IndicatorValue, ind.Action)] == nil && len(s.byID) >= s.cap {
		s.stats.CapRefusals++
		w.error(http.StatusBadRequest, "BadRequest", CapReason)
		return
	}
	ind.CreatedBy, ind.CreatedBySource = clientID, "PublicApi"
	stored, _ := s.storeLocked(ind, now)
	w.json(http.StatusOK, stored)
}

func (s *Server) handleBatchDelete(w *recorder, clientID string, ownOnly bool, body map[string]json.RawMessage) {
	raw, ok := body["IndicatorIds"]
	if !ok {
		w.error(http.StatusBadRequest, "MissingRequiredParameter", "Parameter IndicatorIds is missing.")
		return
	}
	var ids []string
	if json.Unmarshal(raw, &ids) != nil {
		w.error(http.StatusBadRequest, "InvalidRequestBody", "Invalid request body.")
		return
	}
	if len(ids) == 0 || len(ids) > MaxBatch {
		w.error(http.StatusBadRequest, "InvalidInput", fmt.Sprintf("IndicatorIds must hold 1..%d ids, got %d", MaxBatch, len(ids)))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.BatchDeletes++
	s.expire()
	for _, id := range ids {
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			w.error(http.StatusBadRequest, "InvalidInput", fmt.Sprintf("Invalid input %s", id))
			return
		}
	}
	for _, id := range ids {
		ind, ok := s.byID[id]
		if !ok {
			// Choice: nothing is deleted when any id is unknown.
			w.error(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Resource %s wasn't found.", id))
			return
		}
		if ownOnly && ind.CreatedBy != clientID {
			w.error(http.StatusForbidden, "Forbidden", "requestor isn't exposed to the indicator "+id)
			return
		}
	}
	for _, id := range ids {
		s.deleteLocked(s.byID[id])
	}
	w.noContent()
}

func (s *Server) handleDelete(w *recorder, clientID string, ownOnly bool, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Deletes++
	s.expire()
	ind, ok := s.byID[id]
	if !ok {
		w.error(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Resource %s wasn't found.", id))
		return
	}
	if ownOnly && ind.CreatedBy != clientID {
		w.error(http.StatusForbidden, "Forbidden", "requestor isn't exposed to the indicator "+id)
		return
	}
	s.deleteLocked(ind)
	w.noContent()
}

func (s *Server) handleList(w *recorder, r *http.Request, clientID string, ownOnly bool) {
	q := r.URL.Query()
	top := MaxTop
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxTop {
			w.error(http.StatusBadRequest, "ODataError", fmt.Sprintf("Invalid OData URI query: $top must be within 0..%d", MaxTop))
			return
		}
		top = n
	}
	skip := 0
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			w.error(http.StatusBadRequest, "ODataError", "Invalid OData URI query: bad $skip")
			return
		}
		skip = n
	}
	filter, err := parseFilter(q.Get("$filter"))
	if err != nil {
		w.error(http.StatusBadRequest, "ODataError", "Invalid OData URI query: "+err.Error())
		return
	}
	s.mu.Lock()
	s.stats.Lists++
	s.expire()
	all := s.sortedLocked()
	s.mu.Unlock()
	var match []Indicator
	for _, ind := range all {
		if (!ownOnly || ind.CreatedBy == clientID) && filter.match(&ind) {
			match = append(match, ind)
		}
	}
	page := top
	if s.opts.PageSize > 0 && s.opts.PageSize < page {
		page = s.opts.PageSize
	}
	from := min(skip, len(match))
	to := min(from+page, len(match))
	out := map[string]any{"@odata.context": s.URL + "/api/$metadata#Indicators", "value": nonNil(match[from:to])}
	if page < top && to < len(match) && to-skip < top && !s.opts.NoNextLink {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skip", strconv.Itoa(to))
		nq.Set("$top", strconv.Itoa(top-(to-skip)))
		out["@odata.nextLink"] = s.URL + "/api/indicators?" + nq.Encode()
	}
	w.json(http.StatusOK, out)
}

func nonNil(v []Indicator) []Indicator {
	if v == nil {
		return []Indicator{}
	}
	return v
}

func (s *Server) sortedLocked() []Indicator {
	out := make([]Indicator, 0, len(s.byID))
	for _, ind := range s.byID {
		out = append(out, *ind)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID)
		b, _ := strconv.Atoi(out[j].ID)
		return a < b
	})
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "target": fmt.Sprintf("%016x", time.Now().UnixNano())}})
}
