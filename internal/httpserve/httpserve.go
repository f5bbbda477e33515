// Package httpserve holds the limits every HTTP server of the daemon applies (the webhook and
// the metrics/status server): header, read, write and idle timeouts and a cap on open
// connections, so that idle or slow clients can neither hold descriptors for ever nor starve
// the other server. It owns no routes and never decides what a request means.
package httpserve

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound one HTTP server. Every field must be set (the daemon passes the values of
// config/defaults.go); Listen refuses incomplete limits.
type Limits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request for this long.
	IdleTimeout time.Duration
	// MaxConns caps the connections open at once; further clients wait in the kernel's
	// accept queue, holding no descriptor of the process.
	MaxConns int
	// MaxHeaderBytes caps a request's header block.
	MaxHeaderBytes int
}

// Validate reports the first limit that is not set.
func (l Limits) Validate() error {
	switch {
	case l.ReadHeaderTimeout <= 0, l.ReadTimeout <= 0, l.WriteTimeout <= 0, l.IdleTimeout <= 0:
		return fmt.Errorf("http server limits: every timeout must be positive (read header %s, read %s, write %s, idle %s)",
			l.ReadHeaderTimeout, l.ReadTimeout, l.WriteTimeout, l.IdleTimeout)
	case l.MaxConns < 1:
		return fmt.Errorf("http server limits: max connections %d: must be at least 1", l.MaxConns)
	case l.MaxHeaderBytes < 1:
		return fmt.Errorf("http server limits: max header bytes %d: must be at least 1", l.MaxHeaderBytes)
	}
	return nil
}

// Server returns an http.Server for h with the limits' timeouts. The caller may set further
// fields (ErrorLog, BaseContext, TLSConfig) before serving.
func Server(h http.Handler, l Limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Listen listens on addr (TCP) and caps the connections accepted at once at l.MaxConns. It
// refuses limits that are not complete (see Validate).
func Listen(addr string, l Limits) (net.Listener, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return netutil.LimitListener(ln, l.MaxConns), nil
}
