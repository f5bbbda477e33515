package httpserve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIdleKeepAliveConnectionsCannotStarveTheServer is issue 19 row 6: 3,000 idle keep-alive
// connections stayed open on the metrics server for 150 s and exhausted descriptors until the
// webhook's health endpoint stopped answering. Under many idle keep-alive clients, the server
// holds at most MaxConns connections, closes idle ones, and a new health check is answered.
func TestIdleKeepAliveConnectionsCannotStarveTheServer(t *testing.T) {
	const maxConns, clients = 4, 40
	var open, peak atomic.Int64
	limits := Limits{ReadHeaderTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		IdleTimeout: 50 * time.Millisecond, MaxConns: maxConns, MaxHeaderBytes: 4 << 10}
	srv := Server(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(rw, "ok")
	}), limits)
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			if n := open.Add(1); n > peak.Load() {
				peak.Store(n)
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	ln, err := Listen("127.0.0.1:0", limits)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// Each client sends one keep-alive request, reads the answer and stays connected, idle,
	// until the server closes the connection.
	var wg sync.WaitGroup
	closedByServer := make(chan struct{}, clients)
	for range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("idle client never answered: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if _, err := br.ReadByte(); err == io.EOF {
				closedByServer <- struct{}{}
			}
		})
	}
	wg.Wait()
	if len(closedByServer) != clients {
		t.Errorf("%d of %d idle keep-alive connections closed by the server", len(closedByServer), clients)
	}
	// net/http reports StateClosed after closing the connection, which is when the limit frees
	// its slot: one connection being closed may still be counted beside a newly accepted one.
	if p := peak.Load(); p > maxConns+1 {
		t.Errorf("%d connections open at once, want at most %d", p, maxConns)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("health check after the idle flood: %v", err)
	}
	resp.Body.Close()
}
