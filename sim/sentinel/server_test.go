package sentinel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// indicator returns a minimal valid STIX 2.1 indicator; edit removes or changes fields.
func indicator(n int, modified time.Time, edit func(map[string]any)) json.RawMessage {
	ts := modified.UTC().Format("2006-01-02T15:04:05.000Z")
	obj := map[string]any{
		"type": "indicator", "spec_version": "2.1",
		"id":      fmt.Sprintf("indicator--%08x-0000-4000-8000-000000000000", n),
		"created": ts, "modified": ts, "valid_from": ts,
		"pattern": fmt.Sprintf("[ipv4-addr:value = '198.51.100.%d']", n%256), "pattern_type": "stix",
		"name": fmt.Sprintf("indicator %d", n),
	}
	if edit != nil {
		edit(obj)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return b
}

func startSim(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// fetchToken runs the client-credentials grant by hand.
func fetchToken(t *testing.T, s *Server, clientID, secret, scope string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {scope + " openid offline_access profile"}}
	resp, err := s.HTTPClient().PostForm(s.URL+"/"+s.TenantID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode token answer: %v", err)
	}
	return resp.StatusCode, body
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	status, body := fetchToken(t, s, DefaultClientID, DefaultClientSecret, ManagementScope)
	if status != http.StatusOK {
		t.Fatalf("token: HTTP %d %v", status, body)
	}
	return body["access_token"].(string)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, s *Server, path, tok string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

const stixPath = "/workspaces/" + DefaultWorkspaceID + "/threat-intelligence-stix-objects:upload?api-version=" + STIXAPIVersion

func uploadBody(sourceSystem string, objects ...json.RawMessage) []byte {
	b, err := json.Marshal(map[string]any{"sourcesystem": sourceSystem, "stixobjects": objects})
	if err != nil {
		panic(err)
	}
	return b
}

func TestDiscoveryIssuerMatchesAuthority(t *testing.T) {
	s := startSim(t, Options{})
	resp, err := s.HTTPClient().Get(s.URL + "/" + s.TenantID() + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint"} {
		if !strings.HasPrefix(meta[k], s.URL+"/"+s.TenantID()+"/") {
			t.Errorf("%s = %q, want it on %s", k, meta[k], s.URL)
		}
	}
}

func TestTokenEndpoint(t *testing.T) {
	s := startSim(t, Options{})
	tests := []struct {
		name, clientID, secret, scope string
		status                        int
		errCode                       string
	}{
		{"valid", DefaultClientID, DefaultClientSecret, ManagementScope, 200, ""},
		{"wrong secret", DefaultClientID, "nope", ManagementScope, 401, "invalid_client"},
		{"unknown app", "00000000-0000-4000-8000-000000000000", DefaultClientSecret, ManagementScope, 400, "unauthorized_client"},
		{"wrong scope", DefaultClientID, DefaultClientSecret, "https://graph.microsoft.com/.default", 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := fetchToken(t, s, tt.clientID, tt.secret, tt.scope)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%v)", status, tt.status, body)
			}
			if tt.errCode != "" {
				if body["error"] != tt.errCode || body["error_codes"] == nil || body["correlation_id"] == nil {
					t.Errorf("error body %v, want error %q with codes and ids", body, tt.errCode)
				}
				return
			}
			if body["token_type"] != "Bearer" || body["access_token"] == "" || body["expires_in"].(float64) != 3600 {
				t.Errorf("token body %v", body)
			}
		})
	}
}

func TestUploadValidation(t *testing.T) {
	s := startSim(t, Options{})
	tok := token(t, s)
	now := time.Date(2026, 5, 2, 8, 15, 0, 0, time.UTC)
	del := func(field string) func(map[string]any) { return func(o map[string]any) { delete(o, field) } }
	set := func(field string, v any) func(map[string]any) { return func(o map[string]any) { o[field] = v } }
	missing := func(p string) string {
		return "Error for Property=" + p + ": Required property is missing. Actual value: NULL."
	}
	tests := []struct {
		name    string
		body    []byte
		status  int
		message string         // APIM message of a whole-request refusal
		errors  map[int]string // recordIndex -> substring of its first message
	}{
		{"all valid", uploadBody("MISP", indicator(1, now, nil), indicator(2, now, nil)), 200, "", nil},
		{"not JSON", []byte("{"), 400, "Bad format", nil},
		{"no sourcesystem", []byte(`{"stixobjects":[]}`), 400, "Property=sourcesystem", nil},
		{"reserved sourcesystem", uploadBody("Microsoft Sentinel", indicator(1, now, nil)), 400, "reserved", nil},
		{"stixobjects not an array", []byte(`{"sourcesystem":"MISP","stixobjects":{}}`), 400, "array", nil},
		{"too many objects", uploadBody("MISP", manyIndicators(101, now)...), 400, "At most 100", nil},
		{"partial failure", uploadBody("MISP", indicator(1, now, nil), indicator(2, now, del("id")), indicator(3, now, del("pattern"))), 200, "",
			map[int]string{1: missing("id"), 2: missing("pattern")}},
		{"every documented rule", uploadBody("MISP",
			indicator(1, now, del("type")), indicator(2, now, del("created")), indicator(3, now, del("modified")),
			indicator(4, now, del("pattern_type")), indicator(5, now, del("valid_from")),
			indicator(6, now, set("type", "malware")), indicator(7, now, set("confidence", 101)),
			indicator(8, now, set("valid_until", now.Format(time.RFC3339))), indicator(9, now, set("created", "yesterday")),
			indicator(10, now, set("id", "indicator--not-a-uuid")), indicator(11, now, nil)), 200, "",
			map[int]string{0: missing("type"), 1: missing("created"), 2: missing("modified"), 3: missing("pattern_type"),
				4: missing("valid_from"), 5: "Unsupported STIX object type", 6: "Property=confidence", 7: "valid_until must be greater",
				8: "Invalid timestamp", 9: "Invalid STIX identifier"}},
		{"all rejected", uploadBody("MISP", indicator(1, now, del("id"))), 400, "", map[int]string{0: missing("id")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := post(t, s, stixPath, tok, tt.body)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.message != "" {
				var apim struct {
					StatusCode int    `json:"statusCode"`
					Message    string `json:"message"`
				}
				if err := json.Unmarshal(a.body, &apim); err != nil || apim.StatusCode != tt.status || !strings.Contains(apim.Message, tt.message) {
					t.Fatalf("body %s, want statusCode %d and message containing %q", a.body, tt.status, tt.message)
				}
				return
			}
			if tt.errors == nil {
				if len(a.body) != 0 {
					t.Fatalf("body %q, want empty", a.body)
				}
				return
			}
			var got struct {
				Errors []struct {
					RecordIndex   int      `json:"recordIndex"`
					ErrorMessages []string `json:"errorMessages"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(a.body, &got); err != nil {
				t.Fatalf("decode %s: %v", a.body, err)
			}
			if len(got.Errors) != len(tt.errors) {
				t.Fatalf("errors %s, want indices %v", a.body, tt.errors)
			}
			for _, e := range got.Errors {
				want, ok := tt.errors[e.RecordIndex]
				if !ok || len(e.ErrorMessages) == 0 || !strings.Contains(e.ErrorMessages[0], want) {
					t.Errorf("record %d: messages %q, want %q", e.RecordIndex, e.ErrorMessages, want)
				}
			}
		})
	}
}

func manyIndicators(n int, now time.Time) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = indicator(i, now, nil)
	}
	return out
}

func TestLegacyAPI(t *testing.T) {
	s := startSim(t, Options{})
	tok := token(t, s)
	now := time.Now()
	body, _ := json.Marshal(map[string]any{"sourcesystem": "MISP", "value": []json.RawMessage{
		indicator(1, now, nil), indicator(2, now, func(o map[string]any) {
			o["type"] = "identity"
			o["id"] = "identity--00000002-0000-4000-8000-000000000000"
		}),
	}})
	a := post(t, s, "/"+DefaultWorkspaceID+"/threatintelligence:upload-indicators?api-version="+LegacyAPIVersion, tok, body)
	if a.status != 200 || !strings.Contains(string(a.body), `"recordIndex":1`) || !strings.Contains(string(a.body), "Only indicator") {
		t.Fatalf("legacy upload: HTTP %d %s", a.status, a.body)
	}
	if got := s.Indicators(DefaultWorkspaceID, "MISP"); len(got) != 1 {
		t.Fatalf("stored %d objects, want 1", len(got))
	}
	if a := post(t, s, "/"+DefaultWorkspaceID+"/threatintelligence:upload-indicators?api-version="+STIXAPIVersion, tok, body); a.status != 404 {
		t.Fatalf("legacy route with the STIX api-version: HTTP %d, want 404", a.status)
	}
}

func TestUpsertNewestModifiedWinsAndRevocation(t *testing.T) {
	s := startSim(t, Options{})
	tok := token(t, s)
	t0 := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	revoke := func(o map[string]any) { o["revoked"] = true }
	steps := []struct {
		obj          json.RawMessage
		wantModified time.Time
		wantRevoked  bool
	}{
		{indicator(1, t0, nil), t0, false},
		{indicator(1, t0.Add(time.Minute), nil), t0.Add(time.Minute), false},         // newer wins
		{indicator(1, t0, nil), t0.Add(time.Minute), false},                          // older ignored
		{indicator(1, t0.Add(2*time.Minute), revoke), t0.Add(2 * time.Minute), true}, // revocation
		{indicator(1, t0.Add(2*time.Minute), revoke), t0.Add(2 * time.Minute), true}, // idempotent retry
	}
	for i, st := range steps {
		if a := post(t, s, stixPath, tok, uploadBody("MISP", st.obj)); a.status != 200 {
			t.Fatalf("step %d: HTTP %d %s", i, a.status, a.body)
		}
		rec := s.Indicators(DefaultWorkspaceID, "MISP")["indicator--00000001-0000-4000-8000-000000000000"]
		if !rec.Modified.Equal(st.wantModified) || rec.Revoked != st.wantRevoked {
			t.Fatalf("step %d: stored modified %s revoked %v, want %s %v", i, rec.Modified, rec.Revoked, st.wantModified, st.wantRevoked)
		}
	}
	// The same id under another sourcesystem is another object.
	if a := post(t, s, stixPath, tok, uploadBody("Other", indicator(1, t0, nil))); a.status != 200 {
		t.Fatal(a.status)
	}
	objs := s.Objects(DefaultWorkspaceID)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	st := s.Stats()
	if st.StaleIgnored != 1 || st.Unrevoked != 0 {
		t.Fatalf("stats %+v, want 1 stale and no un-revocation", st)
	}
	if post(t, s, stixPath, tok, uploadBody("MISP", indicator(1, t0.Add(3*time.Minute), nil))); s.Stats().Unrevoked != 1 {
		t.Fatal("un-revoking a revoked id is not counted")
	}
}

func TestAccessErrors(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)}
	other := "11111111-2222-4333-8444-555555555555"
	s := startSim(t, Options{
		Apps:       []App{{ClientID: DefaultClientID, Secret: DefaultClientSecret}, {ClientID: other, Secret: "x"}},
		Workspaces: []Workspace{{ID: DefaultWorkspaceID, Contributors: []string{DefaultClientID}}},
		Now:        clock.Now,
	})
	tok := token(t, s)
	body := uploadBody("MISP", indicator(1, clock.Now(), nil))
	_, ob := fetchToken(t, s, other, "x", ManagementScope)
	otherTok := ob["access_token"].(string)

	check := func(name, path, tok string, want int) {
		t.Helper()
		if a := post(t, s, path, tok, body); a.status != want {
			t.Errorf("%s: HTTP %d, want %d (%s)", name, a.status, want, a.body)
		}
	}
	check("valid", stixPath, tok, 200)
	check("no token", stixPath, "", 401)
	check("unknown token", stixPath, "forged", 401)
	check("unknown workspace", "/workspaces/99999999-0000-4000-8000-000000000000/threat-intelligence-stix-objects:upload?api-version="+STIXAPIVersion, tok, 404)
	check("unknown api-version", "/workspaces/"+DefaultWorkspaceID+"/threat-intelligence-stix-objects:upload?api-version=2025-01-01", tok, 404)
	check("non-hyphenated gov path", "/workspaces/"+DefaultWorkspaceID+"/threatintelligence-stix-objects:upload?api-version="+STIXAPIVersion, tok, 404)
	check("app without role", stixPath, otherTok, 403)
	s.SetContributor(DefaultWorkspaceID, other, true)
	check("role granted", stixPath, otherTok, 200)

	clock.Add(time.Hour)
	check("expired token", stixPath, tok, 401)
	fresh := token(t, s)
	check("fresh token", stixPath, fresh, 200)
	s.InvalidateTokens()
	check("invalidated token", stixPath, fresh, 401)
	check("token issued after invalidation", stixPath, token(t, s), 200)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestQuotaPerIdentity(t *testing.T) {
	for _, omit := range []bool{false, true} {
		t.Run(fmt.Sprintf("omit Retry-After %v", omit), func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)}
			s := startSim(t, Options{QuotaPerMinute: 3, OmitRetryAfter: omit, Now: clock.Now,
				Workspaces: []Workspace{{ID: DefaultWorkspaceID}, {ID: "22222222-0000-4000-8000-000000000000"}}})
			tok := token(t, s)
			body := uploadBody("MISP", indicator(1, clock.Now(), nil))
			for i := range 3 {
				path := stixPath
				if i == 2 { // the quota belongs to the identity, not the workspace
					path = strings.Replace(stixPath, DefaultWorkspaceID, "22222222-0000-4000-8000-000000000000", 1)
				}
				if a := post(t, s, path, tok, body); a.status != 200 {
					t.Fatalf("request %d: HTTP %d", i, a.status)
				}
				clock.Add(10 * time.Second)
			}
			a := post(t, s, stixPath, tok, body)
			if a.status != 429 {
				t.Fatalf("4th request in a minute: HTTP %d, want 429", a.status)
			}
			// The first request leaves the window 60 s after it arrived: 30 s from now.
			if want := `{"message":"Rate limit is exceeded. Try again in 30 seconds.","statusCode":429}`; string(a.body) != want {
				t.Errorf("429 body %s, want %s", a.body, want)
			}
			if got := a.header.Get("Retry-After"); (got == "") != omit || (!omit && got != "30") {
				t.Errorf("Retry-After %q (omit %v)", got, omit)
			}
			clock.Add(30 * time.Second)
			if a := post(t, s, stixPath, tok, body); a.status != 200 {
				t.Fatalf("after the window slid: HTTP %d", a.status)
			}
			if st := s.Stats(); st.Throttled != 1 {
				t.Errorf("throttled %d, want 1", st.Throttled)
			}
		})
	}
}

func TestTimeScaleShortensTheMinute(t *testing.T) {
	s := startSim(t, Options{TimeScale: 60})
	if s.Minute() != time.Second {
		t.Fatalf("minute %s, want 1s", s.Minute())
	}
}

func TestFaults(t *testing.T) {
	s := startSim(t, Options{})
	tok := token(t, s)
	body := uploadBody("MISP", indicator(1, time.Now(), nil))

	if err := s.SetFaults(Faults{ServerErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	if a := post(t, s, stixPath, tok, body); a.status != 500 || !strings.Contains(string(a.body), `"activityId"`) {
		t.Errorf("injected 500: HTTP %d %s", a.status, a.body)
	}
	_ = s.SetFaults(Faults{ServerErrorRate: 1, EmptyServerErrors: true})
	if a := post(t, s, stixPath, tok, body); a.status != 500 || len(a.body) != 0 {
		t.Errorf("empty 500: HTTP %d %q", a.status, a.body)
	}
	_ = s.SetFaults(Faults{DropRate: 1})
	req, _ := http.NewRequest(http.MethodPost, s.URL+stixPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := s.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("dropped connection answered HTTP %d", resp.StatusCode)
	}
	_ = s.SetFaults(Faults{})
	s.ThrottleStorm(time.Hour)
	if a := post(t, s, stixPath, tok, body); a.status != 429 || !strings.Contains(string(a.body), "Try again in 3600 seconds") {
		t.Errorf("storm: HTTP %d %s", a.status, a.body)
	}
	s.ThrottleStorm(0)
	s.ThrottleUploads(1, 2500*time.Millisecond)
	if a := post(t, s, stixPath, tok, body); a.status != 429 || !strings.Contains(string(a.body), "Try again in 3 seconds") {
		t.Errorf("throttled upload: HTTP %d %s", a.status, a.body)
	}
	if a := post(t, s, stixPath, tok, body); a.status != 200 {
		t.Errorf("upload after the throttled one: HTTP %d %s", a.status, a.body)
	}
	if err := s.SetFaults(Faults{ServerErrorRate: 2}); err == nil {
		t.Error("rate 2 accepted")
	}
	st := s.Stats()
	if st.ServerErrors != 2 || st.Dropped != 1 || st.Throttled != 2 || len(s.Objects(DefaultWorkspaceID)) != 1 {
		t.Errorf("stats %+v, objects %d", st, len(s.Objects(DefaultWorkspaceID)))
	}
}

func TestManagedIdentityEndpoint(t *testing.T) {
	s := startSim(t, Options{})
	get := func(header, query string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/msi/token?api-version=2019-08-01&"+query, nil)
		if header != "" {
			req.Header.Set("X-IDENTITY-HEADER", header)
		}
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	resource := "resource=" + url.QueryEscape("https://management.azure.com")
	if got := get(DefaultManagedIdentityHeader, resource); got != 200 {
		t.Errorf("valid request: HTTP %d", got)
	}
	if got := get("wrong", resource); got != 401 {
		t.Errorf("wrong identity header: HTTP %d, want 401", got)
	}
	if got := get(DefaultManagedIdentityHeader, resource+"&client_id=someone-else"); got != 400 {
		t.Errorf("unknown user-assigned identity: HTTP %d, want 400", got)
	}
	if got := get(DefaultManagedIdentityHeader, "resource=https://vault.azure.net"); got != 400 {
		t.Errorf("unknown resource: HTTP %d, want 400", got)
	}
}
