package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mispsentinel/listener/internal/control"
)

// TestControlOnOpsListener checks the control routes on the ops listener: absent without
// control.token, and with it served only to requests carrying the bearer token, the
// mutation (requeue) included.
func TestControlOnOpsListener(t *testing.T) {
	call := func(srv *httptest.Server, method, path, token string) (int, string) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, srv.URL+control.Prefix+path, body)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	open := httptest.NewServer(newOfflineDaemonWith(t, "").opsHandler())
	defer open.Close()
	for _, p := range []string{"/status", "/deadletters"} {
		if code, _ := call(open, http.MethodGet, p, ""); code != http.StatusNotFound {
			t.Errorf("GET %s on the ops listener without control.token = %d, want 404", p, code)
		}
	}
	if code, _ := call(open, http.MethodPost, "/deadletters/requeue", ""); code == http.StatusOK {
		t.Errorf("POST requeue on the ops listener without control.token = %d", code)
	}

	guarded := httptest.NewServer(newOfflineDaemonWith(t, "control:\n  token: ops-control-token\n").opsHandler())
	defer guarded.Close()
	for _, tok := range []string{"", "wrong"} {
		if code, _ := call(guarded, http.MethodPost, "/deadletters/requeue", tok); code != http.StatusUnauthorized {
			t.Errorf("requeue with token %q = %d, want 401", tok, code)
		}
		if code, _ := call(guarded, http.MethodGet, "/status", tok); code != http.StatusUnauthorized {
			t.Errorf("status with token %q = %d, want 401", tok, code)
		}
	}
	if code, body := call(guarded, http.MethodGet, "/deadletters", "ops-control-token"); code != http.StatusOK || body != "[]\n" {
		t.Errorf("dead letters with the token = %d %q, want []", code, body)
	}
	if code, body := call(guarded, http.MethodPost, "/deadletters/requeue", "ops-control-token"); code != http.StatusOK || !strings.Contains(body, `"requeued":0`) {
		t.Errorf("requeue with the token = %d %s", code, body)
	}
}
