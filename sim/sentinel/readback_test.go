package sentinel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// clock is a settable simulator clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func armCall(t *testing.T, s *Server, method, path, tok string, body any) (int, map[string]any) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	var a answer
	if method == http.MethodPost {
		a = post(t, s, path, tok, raw)
	} else {
		req, err := http.NewRequest(method, s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	var out map[string]any
	_ = json.Unmarshal(a.body, &out)
	return a.status, out
}

func TestReadBackRoutes(t *testing.T) {
	c := &clock{t: time.Now()}
	s := startSim(t, Options{Now: c.now, VisibilityLag: time.Minute})
	tok := token(t, s)
	t0 := c.now().Add(-time.Hour)
	for i := 0; i < 5; i++ {
		if a := post(t, s, stixPath, tok, uploadBody("MISP", indicator(i, t0, nil))); a.status != 200 {
			t.Fatal(a.status)
		}
	}
	base := s.ARMPath(DefaultWorkspaceID) + "/threatIntelligence/main/"
	query := base + "queryIndicators?api-version=2025-09-01"
	status, out := armCall(t, s, http.MethodPost, query, tok, map[string]any{})
	if status != 200 || len(out["value"].([]any)) != 0 {
		t.Fatalf("within the lag: HTTP %d %v", status, out)
	}
	c.add(time.Minute)
	// Version 2 of indicator 0, ingested now: version 1 shows until the lag has passed.
	post(t, s, stixPath, tok, uploadBody("MISP", indicator(0, t0.Add(time.Second), func(o map[string]any) { o["name"] = "v2" })))
	status, out = armCall(t, s, http.MethodPost, query, tok, map[string]any{"pageSize": 2})
	if status != 200 || len(out["value"].([]any)) != 2 || out["nextLink"] == nil {
		t.Fatalf("first page: HTTP %d %v", status, out)
	}
	names := map[string]bool{}
	link := out["nextLink"].(string)
	for _, v := range out["value"].([]any) {
		props := v.(map[string]any)["properties"].(map[string]any)
		names[props["displayName"].(string)] = true
	}
	for pages := 1; link != ""; pages++ {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		skip := u.Query().Get("$skipToken")
		status, out = armCall(t, s, http.MethodPost, query, tok, map[string]any{"pageSize": 2, "skipToken": skip})
		if status != 200 || pages > 3 {
			t.Fatalf("page %d: HTTP %d %v", pages+1, status, out)
		}
		for _, v := range out["value"].([]any) {
			props := v.(map[string]any)["properties"].(map[string]any)
			names[props["displayName"].(string)] = true
		}
		link, _ = out["nextLink"].(string)
	}
	if len(names) != 5 || names["v2"] {
		t.Errorf("names %v: want the 5 first versions", names)
	}

	// Preview query: paging by GET on nextLink, count.
	q := map[string]any{"condition": map[string]any{"stixObjectType": "indicator", "clauses": []any{
		map[string]any{"field": "source", "operator": "Equals", "values": []string{"MISP"}}}}, "maxPageSize": 3}
	status, out = armCall(t, s, http.MethodPost, base+"query?api-version=2025-07-01-preview", tok, q)
	if status != 200 || len(out["value"].([]any)) != 3 {
		t.Fatalf("query: HTTP %d %v", status, out)
	}
	next := out["nextLink"].(string)
	status, out = armCall(t, s, http.MethodGet, next[len(s.URL):], tok, nil)
	if status != 200 || len(out["value"].([]any)) != 2 || out["nextLink"] != nil {
		t.Fatalf("query page 2: HTTP %d %v", status, out)
	}
	obj := out["value"].([]any)[0].(map[string]any)
	if obj["kind"] != "Indicator" || obj["properties"].(map[string]any)["data"] == nil {
		t.Errorf("TIObject %v", obj)
	}
	status, out = armCall(t, s, http.MethodPost, base+"count?api-version=2025-07-01-preview", tok, map[string]any{"properties": q})
	if status != 200 || out["count"] != float64(5) {
		t.Errorf("count: HTTP %d %v", status, out)
	}

	// DELETE through the management API, then GET is 404; the inconsistency switch keeps
	// it in queryIndicators.
	status, out = armCall(t, s, http.MethodDelete, fmt.Sprintf("%s?api-version=2025-07-01-preview", obj["id"]), tok, nil)
	if status != 200 {
		t.Fatalf("delete: HTTP %d %v", status, out)
	}
	name := indicatorName(obj["name"].(string))
	if status, _ = armCall(t, s, http.MethodGet, base+"indicators/"+name+"?api-version=2025-09-01", tok, nil); status != 404 {
		t.Errorf("GET after delete: HTTP %d", status)
	}
	s.SetQueryShowsDeleted(true)
	if _, out = armCall(t, s, http.MethodPost, query, tok, map[string]any{}); len(out["value"].([]any)) != 5 {
		t.Errorf("with QueryShowsDeleted: %d indicators, want 5", len(out["value"].([]any)))
	}

	// Errors: ARM bodies for a bad api-version, an unknown workspace, a missing role, a
	// token of another audience, and injected 429s.
	if status, out = armCall(t, s, http.MethodPost, base+"queryIndicators?api-version=2019-01-01", tok, nil); status != 400 || out["error"] == nil {
		t.Errorf("bad api-version: HTTP %d %v", status, out)
	}
	if status, _ = armCall(t, s, http.MethodPost, "/subscriptions/x/resourceGroups/y/providers/Microsoft.OperationalInsights/workspaces/z/providers/Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators?api-version=2025-09-01", tok, nil); status != 404 {
		t.Errorf("unknown workspace: HTTP %d", status)
	}
	_, body := fetchToken(t, s, DefaultClientID, DefaultClientSecret, DefenderScopes[0])
	if status, _ = armCall(t, s, http.MethodPost, query, body["access_token"].(string), nil); status != 401 {
		t.Errorf("Defender token: HTTP %d", status)
	}
	s.ThrottleReads(1, 3*time.Second)
	if a := post(t, s, query, tok, nil); a.status != 429 || a.header.Get("Retry-After") != "3" {
		t.Errorf("throttled: HTTP %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	s.SetContributor(DefaultWorkspaceID, DefaultClientID, false)
	if status, _ = armCall(t, s, http.MethodPost, query, tok, nil); status != 403 {
		t.Errorf("without the role: HTTP %d", status)
	}
}

func TestTestControls(t *testing.T) {
	s := startSim(t, Options{})
	tok := token(t, s)
	t0 := time.Now().Add(-time.Hour)
	post(t, s, stixPath, tok, uploadBody("MISP", indicator(1, t0, nil), indicator(2, t0, nil)))
	if !s.DeleteObject(DefaultWorkspaceID, "MISP", "indicator--00000001-0000-4000-8000-000000000000") {
		t.Fatal("nothing deleted")
	}
	if s.DeleteObject(DefaultWorkspaceID, "MISP", "indicator--00000001-0000-4000-8000-000000000000") {
		t.Fatal("deleted twice")
	}
	ok, err := s.AlterObject(DefaultWorkspaceID, "MISP", "indicator--00000002-0000-4000-8000-000000000000", func(o map[string]any) { o["revoked"] = true })
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	recs := s.Indicators(DefaultWorkspaceID, "MISP")
	if len(recs) != 1 || !recs["indicator--00000002-0000-4000-8000-000000000000"].Revoked {
		t.Fatalf("after the controls: %+v", recs)
	}
}
