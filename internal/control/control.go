// Package control owns the transport of the daemon's local control endpoint: the Unix socket
// it listens on (created 0600 in a 0700 directory, a stale socket left by a crash replaced,
// removed on close) and the HTTP client the CLI reaches it with, over that socket or over the
// ops listener with a bearer token. It never decides what a request means: the daemon serves
// the routes, and the CLI chooses what to ask.
package control

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix is the path every control route starts with, on the socket and on the ops listener.
const Prefix = "/control/v1"

// maxSocketPath is the longest path a Unix socket address may have on Linux (sun_path less its
// terminating NUL); the BSDs allow 103.
const maxSocketPath = 107

// maxAnswer bounds one answer the client reads.
const maxAnswer = 64 << 20

// ErrNoDaemon reports that no daemon answers on the endpoint: the socket does not exist, or
// nothing listens on it (a daemon that crashed left it behind).
var ErrNoDaemon = errors.New("no daemon answers on the control endpoint")

// ErrPathTooLong is a socket path longer than a Unix socket address allows.
var ErrPathTooLong = errors.New("the path is too long for a Unix socket")

// Listen creates the control socket at path: its directory is created 0700 when missing and
// refused when others may write to it, and the socket is made 0600, so that only the daemon's
// user can reach it. A socket left by a daemon that crashed (nothing listens on it) is
// replaced; a live one (another daemon) or a file that is not a socket is an error. Closing
// the listener removes the socket.
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket %s: %w (%d bytes, at most %d); set control.socket to a shorter path", path, ErrPathTooLong, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket: create directory: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if info.Mode().Perm()&0o022 != 0 && info.Mode()&fs.ModeSticky == 0 {
		return nil, fmt.Errorf("control socket: directory %s is writable by others (mode %s): make it 0700", dir, info.Mode().Perm())
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// The socket is bound under a temporary name, made 0600 and only then renamed into
	// place, so that a client never finds it before it is private and accepting.
	tmp := filepath.Join(dir, fmt.Sprintf(".control-%d.sock", os.Getpid()))
	if len(tmp) > maxSocketPath {
		tmp = path + "~"
		if len(tmp) > maxSocketPath {
			return nil, fmt.Errorf("control socket %s: %w (%d bytes, at most %d less one); set control.socket to a shorter path", path, ErrPathTooLong, len(path), maxSocketPath)
		}
	}
	if err := removeStale(tmp); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("control socket: listen on %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: make %s private: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &socketListener{UnixListener: ul, path: path}, nil
}

// socketListener removes its socket when closed.
type socketListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

// Close stops listening and removes the socket.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("control socket: remove %s: %w", l.path, rerr)
		}
	})
	return err
}

// removeStale removes a socket at path that nobody listens on.
func removeStale(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if info.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket: %s exists and is not a socket; remove it or set control.socket", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket: %s: another daemon listens on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: remove the stale socket %s: %w", path, err)
	}
	return nil
}

// Authorize wraps h so that every request must carry "Authorization: Bearer <token>" (the
// control routes on the ops listener, a network port). An empty token refuses everything.
func Authorize(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="listener control"`)
			WriteError(w, http.StatusUnauthorized, errors.New("the control endpoint needs the bearer token (control.token)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Error is the body of every control answer that is not 200.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON writes v as a 200 JSON answer.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as a JSON answer with status.
func WriteError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()})
}

// Client asks a running daemon over its control endpoint.
type Client struct {
	http  *http.Client
	base  string
	token string
	// Where names the endpoint for humans: "control socket /var/lib/listener/control.sock".
	Where string
}

// NewSocketClient returns a client of the control socket at path.
func NewSocketClient(path string, timeout time.Duration) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: timeout}, base: "http://listener" + Prefix, Where: "control socket " + path}
}

// NewHTTPClient returns a client of the control routes on the ops listener at addr
// (host:port), authenticated with token.
func NewHTTPClient(addr, token string, timeout time.Duration) *Client {
	return &Client{http: &http.Client{Timeout: timeout}, base: "http://" + addr + Prefix, token: token, Where: "ops listener " + addr}
}

// Get asks path (below Prefix) with query and decodes the JSON answer into v. It returns an
// error matching ErrNoDaemon when nothing answers.
func (c *Client) Get(ctx context.Context, path string, query url.Values, v any) error {
	return c.do(ctx, http.MethodGet, path, query, nil, v)
}

// Post sends body as JSON to path (below Prefix) and decodes the JSON answer into v.
func (c *Client) Post(ctx context.Context, path string, body, v any) error {
	return c.do(ctx, http.MethodPost, path, nil, body, v)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, v any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if noDaemon(err) {
			return fmt.Errorf("%s: %w", c.Where, ErrNoDaemon)
		}
		return fmt.Errorf("ask the daemon on its %s: %w", c.Where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("the daemon (%s) answered %s: %s", c.Where, resp.Status, e.Error)
		}
		return fmt.Errorf("the daemon (%s) answered %s", c.Where, resp.Status)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	return nil
}

// noDaemon says whether a request failed because nothing listens: the socket is missing or
// refuses connections.
func noDaemon(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
