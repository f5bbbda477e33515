package listener

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// floodBody is a valid webhook body for event number i.
func floodBody(i int) ([]byte, string) {
	uuid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	return bytes.Replace(plainBody, []byte(plainEventID), []byte(uuid), 1), uuid
}

// TestWebhookFloodKeepsServingValidRequests runs the webhook server and, while junk clients
// flood it with oversized (declared and chunked), malformed, unauthenticated and
// never-finished requests and raw garbage, posts valid events that must all be answered 202 and
// handed to the handler. No junk request may reach the handler or get a 2xx.
func TestWebhookFloodKeepsServingValidRequests(t *testing.T) {
	const (
		limit       = 64 << 10
		validPosts  = 60
		junkClients = 6
		halfOpen    = 40 // connections that send half a request line and stall
		minJunk     = 400
	)
	rec := &recorder{}
	// Thousands of rejected calls are logged; the assertions say what matters.
	w := NewWebhook(completeWebhook(WebhookConfig{Addr: "127.0.0.1:0", Token: testToken, MaxBodyBytes: limit,
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}), rec, discardLogger(), NewMetrics(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Listening():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	base := "http://" + w.Addr() + defaultWebhookPath

	// Half-open connections hold server goroutines until the header timeout cuts them.
	var stalled []net.Conn
	for range halfOpen {
		c, err := net.Dial("tcp", w.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("POST " + defaultWebhookPath + " HTTP/1.1\r\nHost: x\r\nContent-Le"))
		stalled = append(stalled, c)
	}
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()

	oversized := bytes.Repeat([]byte("A"), limit+1)
	junk := []struct {
		name   string
		header http.Header
		body   func() io.Reader
	}{
		{"oversized", http.Header{"Authorization": {testToken}, "Content-Type": {"application/json"}}, func() io.Reader { return bytes.NewReader(oversized) }},
		{"oversized chunked", http.Header{"Authorization": {testToken}}, func() io.Reader { return io.MultiReader(bytes.NewReader(oversized)) }},
		{"malformed json", http.Header{"Authorization": {testToken}}, func() io.Reader { return strings.NewReader(`{"Event":{"uuid":"` + strings.Repeat("[", 5000)) }},
		{"not an event", http.Header{"Authorization": {testToken}}, func() io.Reader { return strings.NewReader(`[1,2,3]`) }},
		{"no token, oversized", http.Header{"Content-Type": {"application/json"}}, func() io.Reader { return bytes.NewReader(oversized) }},
		{"wrong token", http.Header{"Authorization": {"Bearer guess"}}, func() io.Reader { body, _ := floodBody(1 << 20); return bytes.NewReader(body) }},
		{"wrong content type", http.Header{"Authorization": {testToken}, "Content-Type": {"text/plain"}}, func() io.Reader { body, _ := floodBody(1 << 21); return bytes.NewReader(body) }},
	}

	var junkSent, junkAccepted, rawSent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range junkClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%5 == 0 { // raw garbage on a fresh connection
					if conn, err := net.Dial("tcp", w.Addr()); err == nil {
						_, _ = conn.Write([]byte("\x16\x03\x01\x02\x00GARBAGE\r\n\r\n"))
						_, _ = io.Copy(io.Discard, io.LimitReader(conn, 4096))
						conn.Close()
						rawSent.Add(1)
					}
					continue
				}
				j := junk[i%len(junk)]
				req, err := http.NewRequest(http.MethodPost, base, j.body())
				if err != nil {
					t.Error(err)
					return
				}
				req.Header = j.header.Clone()
				resp, err := client.Do(req)
				junkSent.Add(1)
				if err != nil {
					continue // the server may close an oversized upload mid-way
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 400 {
					junkAccepted.Add(1)
					t.Errorf("junk %q answered %d", j.name, resp.StatusCode)
				}
			}
		}()
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	want := map[string]bool{}
	// Valid posts go on until the flood has sent at least minJunk requests.
	for i := 0; i < validPosts || junkSent.Load() < minJunk; i++ {
		body, uuid := floodBody(i)
		want[uuid] = true
		code, reply := webhookCall{headers: auth(testToken), body: bytes.NewReader(body)}.do(t, client, "http://"+w.Addr())
		if code != http.StatusAccepted || reply.EventUUID != uuid {
			t.Errorf("valid post %d: status %d, reply %+v; want 202 for %s", i, code, reply, uuid)
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v", err)
	}

	notices, _ := rec.snapshot()
	got := map[string]int{}
	for _, n := range notices {
		got[n.EventUUID]++
		if !want[n.EventUUID] {
			t.Errorf("the handler got a notice for %s, which only junk carried", n.EventUUID)
		}
	}
	for uuid := range want {
		if got[uuid] != 1 {
			t.Errorf("event %s handled %d times, want once", uuid, got[uuid])
		}
	}
	t.Logf("%d valid posts accepted beside %d junk requests, %d raw garbage connections and %d stalled connections",
		len(want), junkSent.Load(), rawSent.Load(), halfOpen)
	if junkSent.Load() == 0 {
		t.Error("no junk request was sent: the flood did not happen")
	}
}
