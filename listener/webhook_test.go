package listener

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mispsentinel/listener/pipeline"
)

const (
	testToken       = "webhook-token-0123456789"
	workflowEventID = "5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d21"
	plainEventID    = "0b7e3c52-9d4a-4f61-8e2b-1a3c5d7e9f02"
)

func workflowBody(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "workflow_event_publish.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var plainBody = []byte(`{"Event":{"uuid":"` + plainEventID + `","info":"plain","published":true,"Attribute":[{"uuid":"c3a7c1a2-0d5e-4f7a-9b1c-2d3e4f5a6b7c","type":"domain","category":"Network activity","to_ids":true,"value":"evil.example"}]}}`)

func newTestWebhook(t *testing.T, cfg WebhookConfig, h pipeline.Handler) (*Webhook, *Metrics) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	m := NewMetrics(nil)
	return NewWebhook(completeWebhook(cfg), h, testLogger(t), m), m
}

type webhookCall struct {
	method  string
	path    string
	headers map[string][]string
	body    io.Reader
}

func (c webhookCall) do(t *testing.T, client *http.Client, base string) (int, webhookReply) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	path := c.path
	if path == "" {
		path = defaultWebhookPath
	}
	req, err := http.NewRequest(method, base+path, c.body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range c.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var reply webhookReply
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON; body %q", ct, raw)
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		t.Fatalf("reply %q is not JSON: %v", raw, err)
	}
	return resp.StatusCode, reply
}

func auth(v ...string) map[string][]string {
	return map[string][]string{"Authorization": v, "Content-Type": {"application/json"}}
}

func TestWebhookRequests(t *testing.T) {
	const limit = 64 << 10
	// A valid body padded with JSON whitespace to exactly the limit, and one byte more.
	atLimit := append(bytes.Clone(plainBody), bytes.Repeat([]byte(" "), limit-len(plainBody))...)
	overLimit := append(bytes.Clone(atLimit), ' ')

	tests := []struct {
		name        string
		call        webhookCall
		wantCode    int
		wantUUID    string // the notice expected, if any
		wantErrText string // a substring of the JSON error
	}{
		{name: "workflow core format body", call: webhookCall{headers: auth(testToken), body: bytes.NewReader(workflowBody(t))}, wantCode: 202, wantUUID: workflowEventID},
		{name: "plain Event body", call: webhookCall{headers: auth(testToken), body: bytes.NewReader(plainBody)}, wantCode: 202, wantUUID: plainEventID},
		{name: "bearer scheme", call: webhookCall{headers: auth("Bearer " + testToken), body: bytes.NewReader(plainBody)}, wantCode: 202, wantUUID: plainEventID},
		{name: "json with charset", call: webhookCall{headers: map[string][]string{"Authorization": {testToken}, "Content-Type": {"application/json; charset=utf-8"}}, body: bytes.NewReader(plainBody)}, wantCode: 202, wantUUID: plainEventID},
		{name: "body at the limit", call: webhookCall{headers: auth(testToken), body: bytes.NewReader(atLimit)}, wantCode: 202, wantUUID: plainEventID},
		{name: "missing token", call: webhookCall{headers: map[string][]string{"Content-Type": {"application/json"}}, body: bytes.NewReader(plainBody)}, wantCode: 401, wantErrText: "Authorization"},
		{name: "wrong token", call: webhookCall{headers: auth("guess"), body: bytes.NewReader(plainBody)}, wantCode: 401},
		{name: "token prefix", call: webhookCall{headers: auth(testToken[:len(testToken)-1]), body: bytes.NewReader(plainBody)}, wantCode: 401},
		{name: "token with suffix", call: webhookCall{headers: auth(testToken + "x"), body: bytes.NewReader(plainBody)}, wantCode: 401},
		{name: "two token headers", call: webhookCall{headers: auth(testToken, testToken), body: bytes.NewReader(plainBody)}, wantCode: 401},
		{name: "empty bearer", call: webhookCall{headers: auth("Bearer "), body: bytes.NewReader(plainBody)}, wantCode: 401},
		{name: "malformed json", call: webhookCall{headers: auth(testToken), body: strings.NewReader(`{"Event":{"uuid":`)}, wantCode: 400, wantErrText: "malformed invalid json"},
		{name: "empty body", call: webhookCall{headers: auth(testToken), body: strings.NewReader(``)}, wantCode: 400},
		{name: "event without uuid", call: webhookCall{headers: auth(testToken), body: strings.NewReader(`{"Event":{"info":"x"}}`)}, wantCode: 400, wantErrText: "uuid"},
		{name: "bad uuid", call: webhookCall{headers: auth(testToken), body: strings.NewReader(`{"Event":{"uuid":"{5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d2}"}}`)}, wantCode: 400, wantErrText: "uuid"},
		{name: "form body", call: webhookCall{headers: map[string][]string{"Authorization": {testToken}, "Content-Type": {"application/x-www-form-urlencoded"}}, body: strings.NewReader("Event=1")}, wantCode: 415},
		{name: "oversized with content length", call: webhookCall{headers: auth(testToken), body: bytes.NewReader(overLimit)}, wantCode: 413, wantErrText: "exceeds"},
		{name: "oversized chunked", call: webhookCall{headers: auth(testToken), body: io.MultiReader(bytes.NewReader(overLimit))}, wantCode: 413, wantErrText: "exceeds"},
		{name: "endless chunked body", call: webhookCall{headers: auth(testToken), body: io.MultiReader(strings.NewReader(`{"Event":{"info":"`), endless('A'))}, wantCode: 413},
		{name: "get on the webhook path", call: webhookCall{method: http.MethodGet}, wantCode: 405},
		{name: "unknown path", call: webhookCall{path: "/nope", headers: auth(testToken), body: bytes.NewReader(plainBody)}, wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			w, m := newTestWebhook(t, WebhookConfig{MaxBodyBytes: limit}, rec)
			srv := httptest.NewServer(w.Handler())
			defer srv.Close()

			code, reply := tt.call.do(t, srv.Client(), srv.URL)
			if code != tt.wantCode {
				t.Fatalf("status = %d (%+v), want %d", code, reply, tt.wantCode)
			}
			notices, _ := rec.snapshot()
			if tt.wantUUID != "" {
				if len(notices) != 1 || notices[0].EventUUID != tt.wantUUID || notices[0].Kind != pipeline.Published || notices[0].Source != SourceWebhook || notices[0].Event == nil {
					t.Fatalf("notices = %+v, want one published %s", notices, tt.wantUUID)
				}
				if reply.Status != "accepted" || reply.EventUUID != tt.wantUUID {
					t.Fatalf("reply = %+v", reply)
				}
			} else {
				if len(notices) != 0 {
					t.Fatalf("handler got %+v for a rejected request", notices)
				}
				if reply.Error == "" || !strings.Contains(reply.Error, tt.wantErrText) {
					t.Fatalf("error = %q, want it to contain %q", reply.Error, tt.wantErrText)
				}
				if strings.Contains(reply.Error, testToken) {
					t.Fatal("the error reply leaks the token")
				}
			}
			if got := testutil.ToFloat64(m.WebhookResponses.WithLabelValues(strconv.Itoa(tt.wantCode))); got != 1 {
				t.Errorf("responses{code=%d} = %v, want 1", tt.wantCode, got)
			}
		})
	}
}

// endless is a reader that never ends, to check the body cap does not depend on the client
// stopping.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestWebhookWorkflowBodyContent(t *testing.T) {
	rec := &recorder{}
	w, _ := newTestWebhook(t, WebhookConfig{}, rec)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	code, _ := webhookCall{headers: auth(testToken), body: bytes.NewReader(workflowBody(t))}.do(t, srv.Client(), srv.URL)
	if code != http.StatusAccepted {
		t.Fatalf("status = %d", code)
	}
	notices, _ := rec.snapshot()
	// One top-level attribute and one object attribute; _AttributeFlattened must not double them.
	if got := notices[0].Event.AttributeCount(); got != 2 {
		t.Errorf("attribute count = %d, want 2", got)
	}
}

func TestWebhookChunkedBodyHasNoContentLength(t *testing.T) {
	// Guards the "oversized chunked" case above: the request must really arrive without a length.
	var seen int64
	rec := &recorder{}
	w, _ := newTestWebhook(t, WebhookConfig{MaxBodyBytes: 1024}, rec)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seen = r.ContentLength
		w.Handler().ServeHTTP(rw, r)
	}))
	defer srv.Close()
	code, _ := webhookCall{headers: auth(testToken), body: io.MultiReader(endless(' '))}.do(t, srv.Client(), srv.URL)
	if seen != -1 || code != http.StatusRequestEntityTooLarge {
		t.Fatalf("ContentLength = %d, status = %d; want -1 and 413", seen, code)
	}
}

func TestWebhookHandlerErrorIs503(t *testing.T) {
	rec := &recorder{fail: func(pipeline.Notice) error { return errors.New("badger: disk full at /var/lib/secret-path") }}
	w, m := newTestWebhook(t, WebhookConfig{}, rec)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	code, reply := webhookCall{headers: auth(testToken), body: bytes.NewReader(plainBody)}.do(t, srv.Client(), srv.URL)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", code)
	}
	if strings.Contains(reply.Error, "secret-path") || reply.Error == "" {
		t.Fatalf("error = %q: want a generic message that does not expose internals", reply.Error)
	}
	if got := testutil.ToFloat64(m.HandlerErrors.WithLabelValues(SourceWebhook)); got != 1 {
		t.Errorf("handler errors = %v, want 1", got)
	}
}

// blockingHandler holds every notice until released.
type blockingHandler struct {
	entered chan pipeline.Notice
	release chan error
}

func (b blockingHandler) HandleNotice(ctx context.Context, n pipeline.Notice) error {
	b.entered <- n
	select {
	case err := <-b.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestWebhookAnswersOnlyAfterHandlerReturns(t *testing.T) {
	h := blockingHandler{entered: make(chan pipeline.Notice, 1), release: make(chan error)}
	w, _ := newTestWebhook(t, WebhookConfig{}, h)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()

	type result struct {
		code  int
		reply webhookReply
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+defaultWebhookPath, bytes.NewReader(plainBody))
		req.Header.Set("Authorization", testToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			done <- result{code: -1}
			return
		}
		defer resp.Body.Close()
		var reply webhookReply
		_ = json.NewDecoder(resp.Body).Decode(&reply)
		done <- result{resp.StatusCode, reply}
	}()

	n := <-h.entered
	if n.EventUUID != plainEventID {
		t.Fatalf("handler got %s", n.EventUUID)
	}
	select {
	case r := <-done:
		t.Fatalf("the webhook answered %d while the handler was still running", r.code)
	default:
	}
	h.release <- nil
	if r := <-done; r.code != http.StatusAccepted || r.reply.EventUUID != plainEventID {
		t.Fatalf("after release: %+v, want 202 for %s", r, plainEventID)
	}
}

func TestWebhookHealthAndReadiness(t *testing.T) {
	var readyErr error
	w, _ := newTestWebhook(t, WebhookConfig{Ready: func() error { return readyErr }}, &recorder{})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	get := func(path string) int {
		code, _ := webhookCall{method: http.MethodGet, path: path}.do(t, srv.Client(), srv.URL)
		return code
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("healthz = %d, want 200", got)
	}
	if got := get("/readyz"); got != 200 {
		t.Errorf("readyz while ready = %d, want 200", got)
	}
	readyErr = errors.New("store not open")
	if got := get("/readyz"); got != 503 {
		t.Errorf("readyz while not ready = %d, want 503", got)
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("healthz while not ready = %d, want 200", got)
	}
}

func TestWebhookRunServesTLSAndShutsDown(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	rec := &recorder{}
	w, m := newTestWebhook(t, WebhookConfig{TLSCertFile: certFile, TLSKeyFile: keyFile}, rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Listening():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	host, _, err := net.SplitHostPort(w.Addr())
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q", w.Addr())
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	client := &http.Client{Transport: tr}
	code, _ := webhookCall{headers: auth(testToken), body: bytes.NewReader(plainBody)}.do(t, client, "https://"+w.Addr())
	if code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", code)
	}
	tr.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.WebhookResponses)
	want := `# HELP listener_webhook_responses_total Webhook HTTP responses by status code.
# TYPE listener_webhook_responses_total counter
listener_webhook_responses_total{code="202"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestWebhookRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  WebhookConfig
		h    pipeline.Handler
	}{
		{"no addr", WebhookConfig{Token: "t"}, &recorder{}},
		{"no token", WebhookConfig{Addr: "127.0.0.1:0"}, &recorder{}},
		{"relative path", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", Path: "hook"}, &recorder{}},
		{"path shadows healthz", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", Path: "/healthz"}, &recorder{}},
		{"bad header name", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", AuthHeader: "X Token:"}, &recorder{}},
		{"negative body limit", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", MaxBodyBytes: -1}, &recorder{}},
		{"cert without key", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", TLSCertFile: "c.pem"}, &recorder{}},
		{"missing key pair files", WebhookConfig{Addr: "127.0.0.1:0", Token: "t", TLSCertFile: "/nonexistent/c.pem", TLSKeyFile: "/nonexistent/k.pem"}, &recorder{}},
		{"nil handler", WebhookConfig{Addr: "127.0.0.1:0", Token: "t"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWebhook(completeWebhook(tt.cfg), tt.h, testLogger(t), nil)
			err := w.Run(context.Background())
			if err == nil {
				t.Fatal("Run succeeded, want a configuration error")
			}
			if tt.cfg.Token != "" && strings.Contains(err.Error(), tt.cfg.Token+"\"") {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

func TestWebhookCustomHeaderAndPath(t *testing.T) {
	rec := &recorder{}
	w, _ := newTestWebhook(t, WebhookConfig{AuthHeader: "X-MISP-Token", Path: "/hooks/misp"}, rec)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	call := webhookCall{path: "/hooks/misp", headers: map[string][]string{"X-Misp-Token": {testToken}}, body: bytes.NewReader(plainBody)}
	if code, reply := call.do(t, srv.Client(), srv.URL); code != http.StatusAccepted {
		t.Fatalf("status = %d (%+v), want 202", code, reply)
	}
	call = webhookCall{path: "/hooks/misp", headers: auth(testToken), body: bytes.NewReader(plainBody)}
	if code, _ := call.do(t, srv.Client(), srv.URL); code != http.StatusUnauthorized {
		t.Fatalf("token in Authorization instead of the configured header: status = %d, want 401", code)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and returns a pool trusting it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "listener test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
