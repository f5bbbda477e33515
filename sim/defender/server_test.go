package defender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func token(t *testing.T, s *Server, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {simsentinel.DefaultClientID},
		"client_secret": {simsentinel.DefaultClientSecret}, "scope": {scope}}
	resp, err := s.Entra.HTTPClient().PostForm(s.Entra.URL+"/"+s.Entra.TenantID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token: HTTP %d %v", resp.StatusCode, err)
	}
	return body.AccessToken
}

const mdeScope = "https://api.securitycenter.microsoft.com/.default"

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, s *Server, tok, method, path string, body any) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func indicator(value, typ, action string) map[string]any {
	return map[string]any{"indicatorValue": value, "indicatorType": typ, "action": action, "title": "t", "description": "d",
		"generateAlert": true, "expirationTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
}

func TestAuth(t *testing.T) {
	s := start(t, Options{RefuseXDRAudience: true})
	if a := call(t, s, "", "GET", "/api/indicators", nil); a.status != 401 {
		t.Errorf("no token: %d", a.status)
	}
	if a := call(t, s, token(t, s, simsentinel.ManagementScope), "GET", "/api/indicators", nil); a.status != 401 {
		t.Errorf("ARM token: %d", a.status)
	}
	if a := call(t, s, token(t, s, "https://api.security.microsoft.com/.default"), "GET", "/api/indicators", nil); a.status != 403 {
		t.Errorf("refused XDR audience: %d", a.status)
	}
	if a := call(t, s, token(t, s, mdeScope), "GET", "/API/V1.0/Indicators", nil); a.status != 200 {
		t.Errorf("legacy audience on the v1.0 alias, mixed case: %d %v", a.status, a.body)
	}
}

func TestValidationPerItem(t *testing.T) {
	s := start(t, Options{})
	tok := token(t, s, mdeScope)
	noAlert := indicator("evil.example", "DomainName", "Audit")
	noAlert["generateAlert"] = false
	missing := indicator("evil.example", "DomainName", "Block")
	delete(missing, "title")
	cases := []struct {
		ind  map[string]any
		fail bool
	}{
		{indicator("198.51.100.1", "IpAddress", "Block"), false},
		{indicator("192.168.1.1", "IpAddress", "Block"), true},
		{indicator("198.51.100.0/24", "IpAddress", "Block"), true},
		{indicator("198.51.100.2", "IpAddress", "BlockAndRemediate"), true},
		{indicator("http://x.example/a", "Url", "Block"), false},
		{indicator("x.example/a", "DomainName", "Block"), true},
		{indicator("*.x.example", "DomainName", "Block"), true},
		{indicator("abc", "FileSha1", "Block"), true},
		{indicator(strings.Repeat("a", 64), "FileSha256", "BlockAndRemediate"), false},
		{indicator(strings.Repeat("b", 40), "CertificateThumbprint", "Block"), true},
		{indicator("x.example ", "DomainName", "Block"), true},
		{noAlert, true},
		{missing, true},
	}
	var items []map[string]any
	for _, c := range cases {
		items = append(items, c.ind)
	}
	a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": items})
	if a.status != 200 {
		t.Fatalf("import: %d %v", a.status, a.body)
	}
	results := a.body["value"].([]any)
	for i, c := range cases {
		r := results[i].(map[string]any)
		if r["isFailed"].(bool) != c.fail {
			t.Errorf("%v: isFailed %v, want %v (%v)", c.ind["indicatorValue"], r["isFailed"], c.fail, r["failureReason"])
		}
	}
	if a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"indicators": items}); a.status != 400 {
		t.Errorf("wrong key case: %d", a.status)
	}
	var many []map[string]any
	for i := range 501 {
		many = append(many, indicator(fmt.Sprintf("d%d.example", i), "DomainName", "Block"))
	}
	if a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": many}); a.status != 400 {
		t.Errorf("501 indicators: %d", a.status)
	}
}

func TestCapAndExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := start(t, Options{Cap: 3, Now: clock})
	tok := token(t, s, mdeScope)
	s.Seed("analyst@example.org", Indicator{IndicatorValue: "portal.example", IndicatorType: "DomainName", Action: "Block", Title: "p", Description: "p"})
	import1 := func(values ...string) []any {
		var items []map[string]any
		for _, v := range values {
			items = append(items, indicator(v, "DomainName", "Block"))
		}
		a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": items})
		if a.status != 200 {
			t.Fatalf("import: %d %v", a.status, a.body)
		}
		return a.body["value"].([]any)
	}
	r := import1("a.example", "b.example", "c.example", "a.example")
	if r[2].(map[string]any)["failureReason"] != CapReason || r[3].(map[string]any)["isFailed"].(bool) {
		t.Errorf("want the third refused for the cap and the update accepted: %v", r)
	}
	s.SetCap(3, CapWholeRequest)
	if a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": []any{indicator("c.example", "DomainName", "Block")}}); a.status != 400 {
		t.Errorf("whole-request cap: %d", a.status)
	}
	now = now.Add(2 * time.Hour) // every API indicator expires
	if n := len(s.Indicators()); n != 1 {
		t.Errorf("after expiry %d indicators, want the portal one", n)
	}
}

func TestRateLimitPerCallType(t *testing.T) {
	s := start(t, Options{ImportPerMinute: 2, ListPerMinute: 1})
	tok := token(t, s, mdeScope)
	body := map[string]any{"Indicators": []any{indicator("a.example", "DomainName", "Block")}}
	for i := range 2 {
		if a := call(t, s, tok, "POST", "/api/indicators/import", body); a.status != 200 {
			t.Fatalf("import %d: %d", i, a.status)
		}
	}
	a := call(t, s, tok, "POST", "/api/indicators/import", body)
	if a.status != 429 || a.header.Get("Retry-After") == "" {
		t.Fatalf("third import: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if a := call(t, s, tok, "GET", "/api/indicators", nil); a.status != 200 {
		t.Errorf("list has its own limit: %d", a.status)
	}
	if a := call(t, s, tok, "GET", "/api/indicators", nil); a.status != 429 {
		t.Errorf("second list: %d", a.status)
	}
}

func TestListFilterAndPaging(t *testing.T) {
	s := start(t, Options{PageSize: 2})
	tok := token(t, s, mdeScope)
	var items []map[string]any
	for i := range 5 {
		it := indicator(fmt.Sprintf("d%d.example", i), "DomainName", "Block")
		it["title"] = fmt.Sprintf("it's %d", i)
		items = append(items, it)
	}
	items = append(items, indicator("198.51.100.4", "IpAddress", "Warn"))
	call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": items})
	q := url.Values{"$filter": {"indicatorType eq 'DomainName' and not (title eq 'it''s 0')"}, "$top": {"10"}}
	a := call(t, s, tok, "GET", "/api/indicators?"+q.Encode(), nil)
	if a.status != 200 || len(a.body["value"].([]any)) != 2 || a.body["@odata.nextLink"] == nil {
		t.Fatalf("first page: %d %v", a.status, a.body)
	}
	if a := call(t, s, tok, "GET", "/api/indicators?"+url.Values{"$filter": {"nosuchfield eq 'x'"}}.Encode(), nil); a.status != 400 {
		t.Errorf("unknown field: %d", a.status)
	}
	if a := call(t, s, tok, "GET", "/api/indicators?$top=10001", nil); a.status != 400 {
		t.Errorf("$top above 10000: %d", a.status)
	}
}

func TestBatchDelete(t *testing.T) {
	s := start(t, Options{})
	tok := token(t, s, mdeScope)
	a := call(t, s, tok, "POST", "/api/indicators/import", map[string]any{"Indicators": []any{indicator("a.example", "DomainName", "Block")}})
	id := a.body["value"].([]any)[0].(map[string]any)["id"].(string)
	if a := call(t, s, tok, "POST", "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{id, "424242"}}); a.status != 404 {
		t.Errorf("unknown id: %d", a.status)
	}
	if len(s.Indicators()) != 1 {
		t.Error("a 404 batch delete deleted something")
	}
	if a := call(t, s, tok, "POST", "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{}}); a.status != 400 {
		t.Errorf("empty: %d", a.status)
	}
	if a := call(t, s, tok, "POST", "/api/indicators/BatchDelete", map[string]any{"IndicatorIds": []string{id}}); a.status != 204 {
		t.Errorf("delete: %d", a.status)
	}
}
