package sentinel

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/sim/window"
)

type uploadAPI int

const (
	apiSTIX             uploadAPI = iota // threat-intelligence-stix-objects:upload, key "stixobjects"
	apiLegacyValue                       // legacy v1 threatintelligence:upload-indicators, key "value"
	apiLegacyIndicators                  // legacy v2 threatintelligenceindicators:upload, key "indicators"
)

func (a uploadAPI) arrayKey() string {
	switch a {
	case apiLegacyValue:
		return "value"
	case apiLegacyIndicators:
		return "indicators"
	default:
		return "stixobjects"
	}
}

func (a uploadAPI) version() string {
	if a == apiSTIX {
		return STIXAPIVersion
	}
	return LegacyAPIVersion
}

// supportedTypes are the STIX types the STIX objects API documents; the legacy APIs take
// only indicators.
var supportedTypes = map[string]bool{
	"indicator": true, "attack-pattern": true, "threat-actor": true, "identity": true, "relationship": true,
}

// Record is one object as the simulated Sentinel stores it: the newest accepted version of a
// (sourcesystem, id) pair in a workspace.
type Record struct {
	Workspace    string
	SourceSystem string
	ID           string
	// Key is Sentinel's identity of the object: base64(sourcesystem) + "---" + id.
	Key      string
	Type     string
	Object   json.RawMessage
	Modified time.Time
	Revoked  bool
	// Versions counts the uploads that replaced the stored version (the first included).
	Versions      int
	FirstIngested time.Time
	LastIngested  time.Time
	// Deleted is set by a DELETE through the management API: GET answers 404 and queries
	// leave it out (unless Options.QueryShowsDeleted). An upload of a newer version brings
	// it back.
	Deleted bool

	// prior is the version the last upload replaced, shown by the read-back routes while
	// the current one is within the visibility lag.
	prior *version
}

// version is one stored version of an object, as the read-back routes show it.
type version struct {
	object   json.RawMessage
	modified time.Time
	revoked  bool
	ingested time.Time
}

// Stats counts what the simulator has answered since it started.
type Stats struct {
	TokenRequests int
	TokensIssued  int

	UploadRequests int // every request that reached an upload route
	Unauthorized   int // 401
	Forbidden      int // 403
	NotFound       int // 404
	BadRequests    int // 400 for the request as a whole (not per-record rejections)
	Throttled      int // 429, from the quota or a storm
	ServerErrors   int // injected 500
	Dropped        int // injected closed connections
	Served         int // requests whose objects were validated (200, or AllRejectedStatus)

	ObjectsAccepted int
	ObjectsRejected int
	// StaleIgnored counts accepted objects whose modified was older than the stored one.
	StaleIgnored int
	// Unrevoked counts revoked objects that a newer upload turned back to not revoked (STIX
	// forbids it; the store should never do it).
	Unrevoked int
	// DanglingRefs counts accepted relationships whose source_ref or target_ref named an
	// object neither stored under the same source system nor earlier in the same request
	// (whether the real API refuses them is UNVERIFIED; the store should never send one).
	DanglingRefs int

	// FirstServed and LastServed are the arrival times of the first and last served request.
	FirstServed, LastServed time.Time
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Admitted returns the arrival times of every upload request the quota admitted (every
// identity), in arrival order: benchmarks measure quota use from them.
func (s *Server) Admitted() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.admitted)
}

// Objects returns every stored object of workspace, in no particular order.
func (s *Server) Objects(workspace string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspace)]
	if !ok {
		return nil
	}
	out := make([]Record, 0, len(ws.objects))
	for _, r := range ws.objects {
		out = append(out, copyRecord(r))
	}
	return out
}

// Indicators returns the stored objects of workspace uploaded under sourceSystem, keyed by
// STIX id.
func (s *Server) Indicators(workspace, sourceSystem string) map[string]Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Record)
	ws, ok := s.workspaces[strings.ToLower(workspace)]
	if !ok {
		return out
	}
	for _, r := range ws.objects {
		if r.SourceSystem == sourceSystem {
			out[r.ID] = copyRecord(r)
		}
	}
	return out
}

func copyRecord(r *Record) Record {
	c := *r
	c.Object = bytes.Clone(r.Object)
	return c
}

// ObjectKey returns Sentinel's identity of an object: base64(sourcesystem) + "---" + id.
func ObjectKey(sourceSystem, id string) string {
	return base64.StdEncoding.EncodeToString([]byte(sourceSystem)) + "---" + id
}

type recordError struct {
	RecordIndex   int      `json:"recordIndex"`
	ErrorMessages []string `json:"errorMessages"`
}

func (s *Server) uploadHandler(api uploadAPI) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		s.count(func(st *Stats) { st.UploadRequests++ })

		if v := r.URL.Query().Get("api-version"); v != api.version() {
			s.count(func(st *Stats) { st.NotFound++ })
			writeAPIMError(w, http.StatusNotFound, "Resource not found")
			return
		}
		tok, ok := s.authenticate(r, now)
		if !ok {
			s.count(func(st *Stats) { st.Unauthorized++ })
			writeAPIMError(w, http.StatusUnauthorized, "Unauthorized. Access token is missing or invalid.")
			return
		}
		workspace := strings.ToLower(r.PathValue("workspace"))

		s.mu.Lock()
		ws, known := s.workspaces[workspace]
		allowed := known && (ws.contributors == nil || ws.contributors[tok.clientID])
		s.mu.Unlock()
		if !known {
			s.count(func(st *Stats) { st.NotFound++ })
			writeAPIMError(w, http.StatusNotFound, "Workspace not found")
			return
		}
		if !allowed {
			s.count(func(st *Stats) { st.Forbidden++ })
			writeAPIMError(w, http.StatusForbidden, "The client does not have authorization to perform this action on the workspace.")
			return
		}
		if wait, throttled := s.admit(tok, now); throttled {
			secs := max(1, int(math.Ceil(wait.Seconds())))
			if !s.opts.OmitRetryAfter {
				w.Header().Set("Retry-After", strconv.Itoa(secs))
			}
			writeAPIMError(w, http.StatusTooManyRequests, fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", secs))
			return
		}

		s.mu.Lock()
		faults := s.faults
		drop := faults.DropRate > 0 && s.rng.Float64() < faults.DropRate
		fail := !drop && faults.ServerErrorRate > 0 && s.rng.Float64() < faults.ServerErrorRate
		s.mu.Unlock()
		if faults.Latency > 0 {
			select {
			case <-time.After(faults.Latency):
			case <-r.Context().Done():
				return
			}
		}
		if drop {
			s.count(func(st *Stats) { st.Dropped++ })
			dropConnection(w)
			return
		}
		if fail {
			s.count(func(st *Stats) { st.ServerErrors++ })
			if faults.EmptyServerErrors {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			writeJSON(w, http.StatusInternalServerError, map[string]any{
				"statusCode": 500, "message": "Internal server error", "activityId": randomGUID(),
			})
			return
		}

		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		sourceSystem, objects, status, msg := decodeUpload(r, api)
		if status != 0 {
			s.count(func(st *Stats) { st.BadRequests++ })
			writeAPIMError(w, status, msg)
			return
		}

		errs := s.store(workspace, sourceSystem, objects, api, now)
		switch {
		case len(errs) == 0:
			w.WriteHeader(http.StatusOK)
		case len(errs) == len(objects):
			writeJSON(w, s.opts.AllRejectedStatus, map[string]any{"errors": errs})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"errors": errs})
		}
	}
}

// admit applies a storm, the requests ThrottleUploads throttles or the identity's
// sliding-minute quota. Requests answered 429 do not
// count against the quota; every other authenticated request does.
func (s *Server) admit(tok issuedToken, now time.Time) (wait time.Duration, throttled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.stormUntil) {
		s.stats.Throttled++
		return s.stormUntil.Sub(now), true
	}
	if s.throttleNext > 0 {
		s.throttleNext--
		s.stats.Throttled++
		return s.throttleAfter, true
	}
	s.admitted = append(s.admitted, now)
	if s.opts.QuotaPerMinute < 0 {
		return 0, false
	}
	wait, ok := s.windows.Admit(tok.tenantID+"/"+tok.clientID, now, window.Limit{N: s.opts.QuotaPerMinute, Per: s.Minute()})
	if !ok {
		s.admitted = s.admitted[:len(s.admitted)-1]
		s.stats.Throttled++
		return wait, true
	}
	return 0, false
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// decodeUpload parses the request body. A non-zero status means the request as a whole is
// refused with msg.
func decodeUpload(r *http.Request, api uploadAPI) (sourceSystem string, objects []json.RawMessage, status int, msg string) {
	var body map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", nil, http.StatusRequestEntityTooLarge, "Request body too large."
		}
		return "", nil, http.StatusBadRequest, "Bad format: the request body is not a JSON object."
	}
	fields := make(map[string]json.RawMessage, len(body))
	for k, v := range body {
		fields[strings.ToLower(k)] = v
	}
	if err := json.Unmarshal(fields["sourcesystem"], &sourceSystem); err != nil || strings.TrimSpace(sourceSystem) == "" {
		return "", nil, http.StatusBadRequest, "Error for Property=sourcesystem: Required property is missing. Actual value: NULL."
	}
	if strings.EqualFold(strings.TrimSpace(sourceSystem), "Microsoft Sentinel") {
		return "", nil, http.StatusBadRequest, "Error for Property=sourcesystem: The value Microsoft Sentinel is reserved. Actual value: Microsoft Sentinel."
	}
	key := api.arrayKey()
	raw, ok := fields[key]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", nil, http.StatusBadRequest, fmt.Sprintf("Error for Property=%s: Required property is missing. Actual value: NULL.", key)
	}
	if err := json.Unmarshal(raw, &objects); err != nil {
		return "", nil, http.StatusBadRequest, fmt.Sprintf("Error for Property=%s: Value must be an array.", key)
	}
	if len(objects) == 0 {
		return "", nil, http.StatusBadRequest, fmt.Sprintf("Error for Property=%s: At least one object is required.", key)
	}
	if len(objects) > MaxObjectsPerRequest {
		return "", nil, http.StatusBadRequest, fmt.Sprintf("Error for Property=%s: At most %d objects are allowed per request. Actual value: %d.", key, MaxObjectsPerRequest, len(objects))
	}
	return sourceSystem, objects, 0, ""
}

// validObject is what validation extracts from an acceptable object.
type validObject struct {
	id, typ  string
	modified time.Time
	revoked  bool
}

// validate checks one object against the documented rules and returns its messages.
func validate(raw json.RawMessage, api uploadAPI) (validObject, []string) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return validObject{}, []string{fmt.Sprintf("Error for Property=%s: Object is not a JSON object. Actual value: %s.", api.arrayKey(), truncate(string(raw), 64))}
	}
	var msgs []string
	str := func(name string) (string, bool) {
		v, ok := obj[name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Required property is missing. Actual value: NULL.", name))
			return "", false
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Value must be a string. Actual value: %s.", name, truncate(string(v), 64)))
			return "", false
		}
		return s, true
	}
	timestamp := func(name string, required bool) (time.Time, bool) {
		if _, present := obj[name]; !present && !required {
			return time.Time{}, false
		}
		s, ok := str(name)
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("Error for Property=%s: Invalid timestamp. Actual value: %s.", name, truncate(s, 64)))
			return time.Time{}, false
		}
		return t, true
	}

	var out validObject
	id, idOK := str("id")
	typ, typOK := str("type")
	if typOK {
		switch {
		case api != apiSTIX && typ != "indicator":
			msgs = append(msgs, fmt.Sprintf("Error for Property=type: Only indicator objects are supported. Actual value: %s.", truncate(typ, 64)))
		case !supportedTypes[typ]:
			msgs = append(msgs, fmt.Sprintf("Error for Property=type: Unsupported STIX object type. Actual value: %s.", truncate(typ, 64)))
		}
	}
	if idOK {
		prefix, u, found := strings.Cut(id, "--")
		if _, err := uuid.Parse(u); !found || err != nil || (typOK && prefix != typ) {
			msgs = append(msgs, fmt.Sprintf("Error for Property=id: Invalid STIX identifier. Actual value: %s.", truncate(id, 80)))
		}
	}
	timestamp("created", true)
	modified, _ := timestamp("modified", true)
	if typ == "indicator" {
		str("pattern")
		str("pattern_type")
		from, fromOK := timestamp("valid_from", true)
		until, untilOK := timestamp("valid_until", false)
		if fromOK && untilOK && !until.After(from) {
			msgs = append(msgs, fmt.Sprintf("Error for Property=valid_until: valid_until must be greater than valid_from. Actual value: %s.", until.UTC().Format(time.RFC3339Nano)))
		}
	}
	if typOK && typ != "indicator" {
		msgs = append(msgs, validateContext(obj, typ)...)
	}
	if v, ok := obj["confidence"]; ok {
		var c float64
		if err := json.Unmarshal(v, &c); err != nil || c < 0 || c > 100 || c != math.Trunc(c) {
			msgs = append(msgs, fmt.Sprintf("Error for Property=confidence: Value must be an integer between 0 and 100. Actual value: %s.", truncate(string(v), 32)))
		}
	}
	if v, ok := obj["revoked"]; ok {
		if err := json.Unmarshal(v, &out.revoked); err != nil {
			msgs = append(msgs, fmt.Sprintf("Error for Property=revoked: Value must be a boolean. Actual value: %s.", truncate(string(v), 32)))
		}
	}
	if len(msgs) > 0 {
		return validObject{}, msgs
	}
	out.id, out.typ, out.modified = id, typ, modified
	return out, nil
}

// store validates objects and upserts the valid ones; the newest modified wins.
func (s *Server) store(workspace, sourceSystem string, objects []json.RawMessage, api uploadAPI, now time.Time) []recordError {
	var errs []recordError
	valid := make([]validObject, len(objects))
	for i, raw := range objects {
		v, msgs := validate(raw, api)
		if msgs != nil {
			errs = append(errs, recordError{RecordIndex: i, ErrorMessages: msgs})
			continue
		}
		valid[i] = v
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[workspace]
	s.stats.Served++
	if s.stats.FirstServed.IsZero() {
		s.stats.FirstServed = now
	}
	s.stats.LastServed = now
	s.stats.ObjectsRejected += len(errs)
	for i, v := range valid {
		if v.id == "" {
			continue
		}
		s.stats.ObjectsAccepted++
		if src, dst := refsOf(objects[i]); src != "" || dst != "" {
			for _, ref := range []string{src, dst} {
				if _, ok := ws.objects[ObjectKey(sourceSystem, ref)]; !ok {
					s.stats.DanglingRefs++
					break
				}
			}
		}
		key := ObjectKey(sourceSystem, v.id)
		rec, exists := ws.objects[key]
		switch {
		case !exists:
			ws.objects[key] = &Record{
				Workspace: workspace, SourceSystem: sourceSystem, ID: v.id, Key: key, Type: v.typ,
				Object: bytes.Clone(objects[i]), Modified: v.modified, Revoked: v.revoked,
				Versions: 1, FirstIngested: now, LastIngested: now,
			}
		case v.modified.After(rec.Modified):
			if rec.Revoked && !v.revoked {
				s.stats.Unrevoked++
			}
			if !rec.Deleted {
				rec.prior = &version{object: rec.Object, modified: rec.Modified, revoked: rec.Revoked, ingested: rec.LastIngested}
			} else {
				rec.prior = nil
			}
			rec.Deleted = false
			rec.Object, rec.Modified, rec.Revoked, rec.Type = bytes.Clone(objects[i]), v.modified, v.revoked, v.typ
			rec.Versions++
			rec.LastIngested = now
		case v.modified.Before(rec.Modified):
			s.stats.StaleIgnored++
		default:
			rec.LastIngested = now // the same version again: an idempotent retry
		}
	}
	return errs
}

// dropConnection closes the client's connection without an answer, resetting the TCP
// connection where possible.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = nc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func writeAPIMError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": message})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
