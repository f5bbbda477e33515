package config

import (
	"strings"
	"testing"
)

// TestInvalidURLErrorsNeverEchoCredentials is issue 19 row 19: an unparseable URL was echoed,
// credentials included, in the validation error.
func TestInvalidURLErrorsNeverEchoCredentials(t *testing.T) {
	cfg := Default()
	cfg.MISP.URL = "https://admin:hunter2-secret@misp.example.org:bad-port/%zz"
	cfg.ZeroMQ.Enabled = true
	cfg.ZeroMQ.Endpoint = "tcp://zmq:hunter2-secret@[::1"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid URLs accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation error echoes the credentials: %v", err)
	}
	if !strings.Contains(err.Error(), "misp.url") || !strings.Contains(err.Error(), "zeromq.endpoint") {
		t.Errorf("validation error does not name both keys: %v", err)
	}
}

// TestWarningsForInsecureMISP is issue 19 row 11: insecure_skip_verify and an http:// MISP URL
// were silent; both are warned about.
func TestWarningsForInsecureMISP(t *testing.T) {
	cfg := Default()
	cfg.MISP.URL = "https://misp.example.org"
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("warnings for a verified https MISP: %v", w)
	}
	cfg.MISP.InsecureSkipVerify = true
	cfg.MISP.URL = "http://misp.example.org"
	w := strings.Join(cfg.Warnings(), "\n")
	for _, want := range []string{"misp.insecure_skip_verify", "misp.url"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q do not mention %s", w, want)
		}
	}
}
