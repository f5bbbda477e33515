package listener

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/mispsentinel/listener/internal/httpserve"
	"github.com/mispsentinel/listener/pipeline"
)

// WebhookConfig configures the webhook source. Every field is required except the TLS files
// and Ready; the daemon fills them from the configuration (config.Default has the defaults).
type WebhookConfig struct {
	// Addr is the listen address, e.g. ":8443" or "127.0.0.1:0".
	Addr string
	// Path receives MISP's workflow webhook POSTs.
	Path string
	// AuthHeader names the header carrying Token; MISP's webhook module sends static headers
	// only. Its value must be Token, optionally after "Bearer ".
	AuthHeader string
	// Token is the shared secret. Required.
	Token string
	// MaxBodyBytes caps the request body; larger bodies get 413.
	MaxBodyBytes int64
	// MaxInflightBytes caps the bodies of all requests being read or handled at once: each
	// request reserves its declared Content-Length (MaxBodyBytes when chunked) before reading,
	// and a request that does not fit is answered 503 with Retry-After. Never below
	// MaxBodyBytes.
	MaxInflightBytes int64
	// TLSCertFile and TLSKeyFile enable HTTPS when both are set.
	TLSCertFile string
	TLSKeyFile  string
	// Ready reports whether the daemon can accept notices, for /readyz. Nil means always ready.
	Ready func() error
	// HTTP server timeouts and the bound of the graceful shutdown.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	// MaxConns caps the connections open at once.
	MaxConns int
	// MaxHeaderBytes caps a request's header block.
	MaxHeaderBytes int
	// HandlerTimeout bounds one call's handling (a MISP re-fetch and the store commit), so
	// that the call is answered 503 before WriteTimeout cuts the connection: three
	// quarters of WriteTimeout (config.WebhookHandlerTimeout); it must stay below WriteTimeout.
	HandlerTimeout time.Duration
}

// Validate checks that the configuration is complete and consistent. Errors never include the
// token.
func (c WebhookConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr: required"))
	}
	if !strings.HasPrefix(c.Path, "/") || c.Path == "/healthz" || c.Path == "/readyz" {
		errs = append(errs, fmt.Errorf("path %q: must start with / and not be /healthz or /readyz", c.Path))
	}
	if !validHeaderName(c.AuthHeader) {
		errs = append(errs, fmt.Errorf("auth header %q: not a valid header name", c.AuthHeader))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("token: required"))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("max body bytes: must be positive"))
	}
	if c.HandlerTimeout <= 0 || c.HandlerTimeout >= c.WriteTimeout {
		errs = append(errs, fmt.Errorf("handler timeout %s: must be positive and below the write timeout %s", c.HandlerTimeout, c.WriteTimeout))
	}
	if c.MaxInflightBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max in-flight bytes %d: must be at least max body bytes %d", c.MaxInflightBytes, c.MaxBodyBytes))
	}
	if c.MaxHeaderBytes < 1 {
		errs = append(errs, fmt.Errorf("max header bytes %d: must be at least 1", c.MaxHeaderBytes))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("max conns %d: must be at least 1", c.MaxConns))
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("timeouts: must be positive"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls: set both the certificate and the key file, or neither"))
	}
	return errors.Join(errs...)
}

// Webhook receives MISP workflow webhook calls (the "MISP core format" body of the event-publish
// trigger, or a plain {"Event": ...}) and answers 202 only after the Handler made the notice
// durable. HTTP routing lives in webhook_echo.go; everything else is plain net/http.
type Webhook struct {
	cfg      WebhookConfig
	cfgErr   error
	handler  pipeline.Handler
	log      *logrus.Entry
	metrics  *Metrics
	now      func() time.Time
	tokenSum [sha256.Size]byte
	http     http.Handler
	// inflight holds the bytes reserved by the bodies being read or handled.
	inflight *semaphore.Weighted
	// authFailureLog lets one summary of refused calls through per interval; authFailures
	// counts the refusals since the last summary.
	authFailureLog rate.Sometimes
	authFailures   atomic.Int64

	mu        sync.Mutex
	addr      string
	listening chan struct{}
}

// NewWebhook creates the source. log and m may be nil. Configuration errors are returned by Run.
func NewWebhook(cfg WebhookConfig, h pipeline.Handler, log *logrus.Logger, m *Metrics) *Webhook {
	if log == nil {
		log = logrus.StandardLogger()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	w := &Webhook{
		cfg:      cfg,
		cfgErr:   cfg.Validate(),
		handler:  h,
		log:      log.WithField("source", SourceWebhook),
		metrics:  m,
		now:      time.Now,
		tokenSum: sha256.Sum256([]byte(withoutBearer(cfg.Token))),
		inflight: semaphore.NewWeighted(max(cfg.MaxInflightBytes, 1)),

		authFailureLog: rate.Sometimes{First: 1, Interval: authFailureLogInterval},
		listening:      make(chan struct{}),
	}
	if w.cfgErr == nil && h == nil {
		w.cfgErr = errors.New("nil handler")
	}
	w.http = w.countResponses(newRouter(w))
	return w
}

// Handler returns the HTTP handler (webhook path, /healthz, /readyz), for httptest.
func (w *Webhook) Handler() http.Handler { return w.http }

// Listening is closed once Run has bound its address.
func (w *Webhook) Listening() <-chan struct{} { return w.listening }

// Addr returns the bound address ("127.0.0.1:43210"), or "" before Run has bound it.
func (w *Webhook) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Run serves until ctx ends, then shuts down gracefully: requests in flight, and so Handler
// calls, are allowed to finish within ShutdownTimeout. It returns nil after a clean shutdown.
func (w *Webhook) Run(ctx context.Context) error {
	if w.cfgErr != nil {
		return fmt.Errorf("webhook source: %w", w.cfgErr)
	}
	limits := httpserve.Limits{
		ReadHeaderTimeout: w.cfg.ReadHeaderTimeout,
		ReadTimeout:       w.cfg.ReadTimeout,
		WriteTimeout:      w.cfg.WriteTimeout,
		IdleTimeout:       w.cfg.IdleTimeout,
		MaxConns:          w.cfg.MaxConns,
		MaxHeaderBytes:    w.cfg.MaxHeaderBytes,
	}
	srv := httpserve.Server(w.http, limits)
	srv.ErrorLog = stdlog.New(logWriter{w.log}, "", 0)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	useTLS := w.cfg.TLSCertFile != ""
	if useTLS {
		cert, err := tls.LoadX509KeyPair(w.cfg.TLSCertFile, w.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("webhook source: load tls key pair: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	ln, err := httpserve.Listen(w.cfg.Addr, limits)
	if err != nil {
		return fmt.Errorf("webhook source: %w", err)
	}
	w.mu.Lock()
	w.addr = ln.Addr().String()
	w.mu.Unlock()
	close(w.listening)
	w.log.WithFields(logrus.Fields{"addr": w.Addr(), "path": w.cfg.Path, "tls": useTLS}).Info("webhook listening")

	served := make(chan error, 1)
	go func() {
		if useTLS {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("webhook source: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("webhook source: shutdown: %w", err)
	}
	<-served
	return nil
}

// webhookReply is every JSON body the webhook sends.
type webhookReply struct {
	Status    string `json:"status,omitempty"`
	EventUUID string `json:"event_uuid,omitempty"`
	Error     string `json:"error,omitempty"`
}

func replyError(msg string) webhookReply { return webhookReply{Error: msg} }

// receive handles one webhook call and returns the status and body to send.
func (w *Webhook) receive(rw http.ResponseWriter, r *http.Request) (int, webhookReply) {
	// The deadline starts with the call: reading the body counts against the write timeout too.
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.HandlerTimeout)
	defer cancel()
	if !w.authorized(r.Header.Values(w.cfg.AuthHeader)) {
		w.authFailed(r.RemoteAddr)
		return http.StatusUnauthorized, replyError("missing or invalid credentials in the " + w.cfg.AuthHeader + " header")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			w.metrics.Malformed.WithLabelValues(SourceWebhook, ReasonContentType).Inc()
			return http.StatusUnsupportedMediaType, replyError("content type must be application/json")
		}
	}
	if r.ContentLength > w.cfg.MaxBodyBytes {
		return w.bodyTooLarge(rw)
	}
	// Reserve the body's bytes before reading any: without the budget, concurrent large
	// bodies grow memory without bound (48 × 30 MiB took 3.9 GB).
	reserve := r.ContentLength
	if reserve < 0 {
		reserve = w.cfg.MaxBodyBytes
	}
	if !w.inflight.TryAcquire(reserve) {
		w.metrics.WebhookBudgetFull.Inc()
		rw.Header().Set("Retry-After", strconv.Itoa(int(webhookRetryAfter/time.Second)))
		rw.Header().Set("Connection", "close")
		return http.StatusServiceUnavailable, replyError("too many large requests in flight; retry later")
	}
	w.metrics.WebhookInflightBytes.Add(float64(reserve))
	defer func() {
		w.inflight.Release(reserve)
		w.metrics.WebhookInflightBytes.Sub(float64(reserve))
	}()
	body, err := readBody(rw, r, w.cfg.MaxBodyBytes)
	if err != nil {
		var bad *MalformedError
		if errors.As(err, &bad) && bad.Reason == ReasonBodyTooLarge {
			return w.bodyTooLarge(rw)
		}
		w.metrics.Malformed.WithLabelValues(SourceWebhook, ReasonBodyUnreadable).Inc()
		return http.StatusBadRequest, replyError("could not read the request body")
	}
	n, err := decodePublished(body, SourceWebhook, w.now())
	if err != nil {
		reason := ReasonInvalidJSON
		var bad *MalformedError
		if errors.As(err, &bad) {
			reason = bad.Reason
		}
		w.metrics.Malformed.WithLabelValues(SourceWebhook, reason).Inc()
		return http.StatusBadRequest, replyError(truncate(err.Error(), 512))
	}
	w.metrics.NoticesReceived.WithLabelValues(SourceWebhook, n.Kind.String()).Inc()
	if err := w.handler.HandleNotice(ctx, *n); err != nil {
		w.metrics.HandlerErrors.WithLabelValues(SourceWebhook).Inc()
		rw.Header().Set("Retry-After", strconv.Itoa(int(webhookRetryAfter/time.Second)))
		if ctx.Err() != nil && r.Context().Err() == nil {
			w.log.WithError(err).WithFields(logrus.Fields{"event_uuid": n.EventUUID, "handler_timeout": w.cfg.HandlerTimeout}).
				Error("webhook notice not handled within the handler timeout; answered 503")
			return http.StatusServiceUnavailable, replyError("the event could not be handled in time; retry later")
		}
		w.log.WithError(err).WithField("event_uuid", n.EventUUID).Error("storing webhook notice failed")
		return http.StatusServiceUnavailable, replyError("the event could not be stored; retry later")
	}
	return http.StatusAccepted, webhookReply{Status: "accepted", EventUUID: n.EventUUID}
}

// authFailureLogInterval spaces the warnings about refused calls: a flood of them must not
// flood the log (one line per call made 8.1 MB in 10 s).
const authFailureLogInterval = time.Minute

// authFailed counts a call refused for its token and logs a summary at most once per interval.
func (w *Webhook) authFailed(remote string) {
	w.metrics.AuthFailures.Inc()
	w.authFailures.Add(1)
	w.authFailureLog.Do(func() {
		w.log.WithFields(logrus.Fields{"refused_calls": w.authFailures.Swap(0), "last_remote": remote,
			"interval": authFailureLogInterval}).
			Warn("webhook calls with a missing or wrong token (at most one such line per interval; listener_webhook_auth_failures_total counts them all)")
	})
}

// webhookRetryAfter is the Retry-After of a call refused because the in-flight budget is full.
const webhookRetryAfter = 5 * time.Second

func (w *Webhook) bodyTooLarge(rw http.ResponseWriter) (int, webhookReply) {
	w.metrics.Malformed.WithLabelValues(SourceWebhook, ReasonBodyTooLarge).Inc()
	rw.Header().Set("Connection", "close")
	return http.StatusRequestEntityTooLarge, replyError(fmt.Sprintf("request body exceeds %d bytes", w.cfg.MaxBodyBytes))
}

// readiness answers /readyz.
func (w *Webhook) readiness() (int, webhookReply) {
	if w.cfg.Ready != nil {
		if err := w.cfg.Ready(); err != nil {
			w.log.WithError(err).Warn("readiness check failed")
			return http.StatusServiceUnavailable, replyError("not ready")
		}
	}
	return http.StatusOK, webhookReply{Status: "ready"}
}

// authorized compares the credential with the token in constant time. Both sides are hashed
// first so that the comparison does not reveal the token's length either. Exactly one header
// value is accepted.
func (w *Webhook) authorized(values []string) bool {
	if len(values) != 1 {
		return false
	}
	got := sha256.Sum256([]byte(withoutBearer(values[0])))
	return subtle.ConstantTimeCompare(got[:], w.tokenSum[:]) == 1
}

// withoutBearer trims a credential and drops a leading "Bearer " (any case), so that the
// configured token and the header match with or without it.
func withoutBearer(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	return v
}

// readBody reads at most limit bytes whatever Content-Length says (it may be absent, with a
// chunked body, or wrong). echo's BodyLimit middleware can be read past (labstack/echo#3071), so
// the limit is enforced here. A declared length is read into one buffer of exactly that size
// rather than grown by doubling.
func readBody(rw http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, malformed(ReasonBodyTooLarge, nil)
	}
	in := http.MaxBytesReader(rw, r.Body, limit)
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		if _, err = io.ReadFull(in, body); err == nil {
			// net/http stops at Content-Length; a further byte would mean a broken framing.
			var extra [1]byte
			if n, rerr := in.Read(extra[:]); n > 0 {
				err = fmt.Errorf("body longer than its Content-Length")
			} else if rerr != nil && rerr != io.EOF {
				err = rerr
			}
		}
	} else {
		body, err = io.ReadAll(in)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, malformed(ReasonBodyTooLarge, err)
		}
		return nil, malformed(ReasonBodyUnreadable, err)
	}
	return body, nil
}

// countResponses counts responses by status code around the whole router.
func (w *Webhook) countResponses(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: rw}
		next.ServeHTTP(rec, r)
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		w.metrics.WebhookResponses.WithLabelValues(strconv.Itoa(code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// validHeaderName reports whether s is an HTTP field name: one or more RFC 9110 token characters.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// String describes the configuration with the token redacted, so printing it is safe.
func (c WebhookConfig) String() string {
	token := ""
	if c.Token != "" {
		token = "REDACTED"
	}
	return fmt.Sprintf("{Addr:%s Path:%s AuthHeader:%s Token:%s MaxBodyBytes:%d TLSCertFile:%s TLSKeyFile:%s}",
		c.Addr, c.Path, c.AuthHeader, token, c.MaxBodyBytes, c.TLSCertFile, c.TLSKeyFile)
}

// GoString is String, so %#v does not print the token either.
func (c WebhookConfig) GoString() string { return c.String() }
