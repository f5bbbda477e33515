package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shortDir returns a private directory with a short path (a socket path has ~107 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func serve(t *testing.T, ln net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, map[string]string{"path": r.URL.Path})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// TestListenPrivateAndRemovedOnClose checks the socket's mode (0600), its new directory's
// (0700), that a client reaches it, and that closing removes it.
func TestListenPrivateAndRemovedOnClose(t *testing.T) {
	path := filepath.Join(shortDir(t), "state", "control.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %s, want a 0600 socket", info.Mode())
	}
	dinfo, _ := os.Stat(filepath.Dir(path))
	if dinfo.Mode().Perm() != 0o700 {
		t.Errorf("directory mode = %s, want 0700", dinfo.Mode().Perm())
	}
	serve(t, ln)
	var got map[string]string
	c := NewSocketClient(path, 10*time.Second)
	if err := c.Get(context.Background(), "/status", nil, &got); err != nil || got["path"] != Prefix+"/status" {
		t.Fatalf("get through the socket = %v %v", got, err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the socket is still there after Close: %v", err)
	}
	if err := c.Get(context.Background(), "/status", nil, &got); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("get after close = %v, want ErrNoDaemon", err)
	}
}

// TestListenStaleLiveAndForeign checks what Listen finds at its path: a socket nobody
// listens on (a crash) is replaced, a live one (another daemon) and a regular file are
// refused and left alone.
func TestListenStaleLiveAndForeign(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "control.sock")

	// A crashed daemon's socket: the file stays, nothing listens.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket should remain: %v", err)
	}
	c := NewSocketClient(path, 10*time.Second)
	var v any
	if err := c.Get(context.Background(), "/status", nil, &v); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("get on a stale socket = %v, want ErrNoDaemon", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer ln.Close()

	// A live one is another daemon's.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Errorf("listen over a live socket = %v, want another daemon", err)
	}
	// A regular file is not ours to remove.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file = %v, want not a socket", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the regular file was removed: %v", err)
	}
}

// TestListenRefusesOpenDirectoryAndLongPath checks the directory and path checks.
func TestListenRefusesOpenDirectoryAndLongPath(t *testing.T) {
	dir := shortDir(t)
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(open, "control.sock")); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("listen in a world-writable directory = %v", err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 120), "control.sock")
	if _, err := Listen(long); !errors.Is(err, ErrPathTooLong) {
		t.Errorf("listen on a %d-byte path = %v, want ErrPathTooLong", len(long), err)
	}
}

// TestAuthorize checks the bearer token on the ops listener's control routes.
func TestAuthorize(t *testing.T) {
	h := Authorize("s3cret-token", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, []string{}) }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var v []string
	for _, tok := range []string{"", "wrong", "s3cret-token2"} {
		if err := NewHTTPClient(addr, tok, 10*time.Second).Get(context.Background(), "/status", nil, &v); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("token %q: %v, want 401", tok, err)
		}
	}
	if err := NewHTTPClient(addr, "s3cret-token", 10*time.Second).Get(context.Background(), "/status", nil, &v); err != nil {
		t.Errorf("right token: %v", err)
	}
	// An empty configured token refuses everything, even an empty bearer.
	srv2 := httptest.NewServer(Authorize("", h))
	defer srv2.Close()
	req, _ := http.NewRequest(http.MethodGet, srv2.URL+Prefix+"/status", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("empty token = %d, want 401", resp.StatusCode)
	}
}
