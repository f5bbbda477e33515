package loopback

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServesPlainAndTLS(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		s, err := Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.URL.Path) }), Options{TLS: useTLS})
		if err != nil {
			t.Fatal(err)
		}
		wantScheme := map[bool]string{false: "http://127.0.0.1:", true: "https://127.0.0.1:"}[useTLS]
		if !strings.HasPrefix(s.URL, wantScheme) {
			t.Errorf("URL %s, want %s...", s.URL, wantScheme)
		}
		resp, err := s.Client().Get(s.URL + "/x")
		if err != nil {
			t.Fatalf("TLS %v: %v", useTLS, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello /x" {
			t.Errorf("TLS %v: body %q", useTLS, body)
		}
		if useTLS {
			// A client that does not trust the certificate is refused.
			if _, err := http.Get(s.URL); err == nil {
				t.Error("a client without the simulator's CA got through")
			}
			if s.Certificate() == nil || s.TLSCertificate() == nil {
				t.Error("no certificate")
			}
		}
		s.Close()
		if _, err := s.Client().Get(s.URL); err == nil {
			t.Errorf("TLS %v: served after Close", useTLS)
		}
	}
}
