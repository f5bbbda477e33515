package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	stdlog "log"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/security/plain"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/pipeline"
)

// workerQueue is the number of received notices one worker may have waiting before the
// receive loop waits for it.
const workerQueue = 64

// ZeroMQConfig configures the ZeroMQ source. Every field is required except the PLAIN
// credentials; the daemon fills them from the configuration (config.Default has the defaults).
type ZeroMQConfig struct {
	// Endpoint of MISP's PUB socket, e.g. "tcp://misp.example.org:50000".
	Endpoint string
	// Username and Password for ZeroMQ PLAIN, used when Username is set. PLAIN sends them in
	// clear text: keep the connection on a private network or a tunnel.
	Username string
	Password string
	// HeartbeatTimeout is how long the subscriber waits for any message before it assumes the
	// connection is dead and reconnects. MISP sends a heartbeat after 10 s of idleness.
	HeartbeatTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff between connection attempts.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// DialTimeout bounds one connection attempt, TCP connect and ZMTP handshake together.
	DialTimeout time.Duration
	// Workers is the number of goroutines that hand notices to the Handler. Notices about the
	// same event always go to the same worker and are handed over in the order received. A
	// Handler that implements pipeline.NoticeSubmitter (*pipeline.Pipeline) takes each notice
	// without waiting for it, so many wait together and are re-fetched in one request; another
	// Handler is called synchronously, Workers notices at once.
	Workers int
	// MaxQueued bounds the notices received and not yet handled (queued for a worker or
	// submitted and not yet committed); the receive loop waits while it is reached (ZeroMQ
	// then queues in zmq4 and the kernel).
	MaxQueued int
	// MaxFrameBytes caps one frame, and one multipart message, the peer may send; a peer that
	// declares more is disconnected before zmq4 allocates anything.
	MaxFrameBytes int64
	// DrainTimeout bounds how long the workers keep handling queued notices once Run's context
	// ends; what is still queued then is handed to the Handler's RecordPending.
	DrainTimeout time.Duration
}

// Validate checks that the configuration is complete and consistent.
func (c ZeroMQConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Endpoint, "tcp://") {
		errs = append(errs, fmt.Errorf("endpoint %q: must start with tcp://", c.Endpoint))
	}
	if c.Username == "" && c.Password != "" {
		errs = append(errs, errors.New("password: set without username"))
	}
	if len(c.Username) > 255 || len(c.Password) > 255 {
		errs = append(errs, errors.New("username and password: PLAIN allows at most 255 bytes each"))
	}
	if c.HeartbeatTimeout <= 0 || c.ReconnectMin <= 0 || c.ReconnectMax <= 0 || c.DialTimeout <= 0 || c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("heartbeat timeout, reconnect min and max, dial timeout and drain timeout: must be positive"))
	}
	if c.Workers < 1 || c.Workers > 256 {
		errs = append(errs, fmt.Errorf("workers %d: must be between 1 and 256", c.Workers))
	}
	if c.MaxQueued < 1 {
		errs = append(errs, fmt.Errorf("max queued %d: must be positive", c.MaxQueued))
	}
	if c.MaxFrameBytes <= 0 {
		errs = append(errs, fmt.Errorf("max frame bytes %d: must be positive", c.MaxFrameBytes))
	}
	if c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("reconnect max %s is below reconnect min %s", c.ReconnectMax, c.ReconnectMin))
	}
	return errors.Join(errs...)
}

// ZeroMQ subscribes to MISP's ZeroMQ publisher and turns its messages into notices.
//
// It supervises the connection itself rather than relying on zmq4's automatic reconnect, which
// gives up silently after a few seconds and never recovers with PLAIN (spec/misp-interfaces.md
// §1.5): on any receive error, and when nothing arrives within HeartbeatTimeout, it closes the
// socket and dials a new one with backoff. PUB/SUB has no replay, so every connection, first or
// not, is reported to the GapFunc with the last instant up to which messages were seen.
//
// Notices are handed to the Handler by Workers goroutines, so a slow re-fetch or store commit
// does not stall the receive loop; notices about one event are always handled in order. A
// pipeline.NoticeSubmitter Handler takes them without waiting (up to MaxQueued unanswered), so
// its re-fetches coalesce. When
// Run's context ends, intake stops at once and the workers keep handling what is queued for up
// to DrainTimeout; the notices still unhandled then are given to the Handler's RecordPending
// (when it implements pipeline.PendingRecorder), so a shutdown loses nothing received.
type ZeroMQ struct {
	cfg      ZeroMQConfig
	endpoint string // on the guarded transport
	cfgErr   error
	handler  pipeline.Handler
	onGap    pipeline.GapFunc
	log      *logrus.Logger
	metrics  *Metrics
	now      func() time.Time

	// seenUntil is the last instant up to which the subscriber knows it missed nothing: the last
	// message's receipt, or the start of the current connection. Owned by Run's goroutine.
	seenUntil time.Time
	// workers handle the notices; set by Run.
	workers *noticeWorkers
	// received counts the notices received. Owned by Run's goroutine.
	received uint64
}

// NewZeroMQ creates the source. onGap, log and m may be nil. Configuration errors are returned by
// Run, before any I/O.
func NewZeroMQ(cfg ZeroMQConfig, h pipeline.Handler, onGap pipeline.GapFunc, log *logrus.Logger, m *Metrics) *ZeroMQ {
	if log == nil {
		log = logrus.StandardLogger()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if onGap == nil {
		onGap = func(context.Context, time.Time, string) {}
	}
	z := &ZeroMQ{cfg: cfg, handler: h, onGap: onGap, log: log, metrics: m, now: time.Now}
	z.cfgErr = cfg.Validate()
	if z.cfgErr == nil {
		z.endpoint, z.cfgErr = guardedEndpoint(cfg.Endpoint)
	}
	if z.cfgErr == nil && h == nil {
		z.cfgErr = errors.New("nil handler")
	}
	return z
}

// Run connects, receives and reconnects until ctx ends, then closes the socket and returns nil.
// It returns an error only for an invalid configuration.
func (z *ZeroMQ) Run(ctx context.Context) error {
	if z.cfgErr != nil {
		return fmt.Errorf("zeromq source: %w", z.cfgErr)
	}
	log := z.log.WithFields(logrus.Fields{"source": SourceZeroMQ, "endpoint": z.cfg.Endpoint})
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     z.cfg.ReconnectMin,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         z.cfg.ReconnectMax,
	}
	bo.Reset()
	z.seenUntil = z.now()
	workCtx, stopWork := drainContext(ctx, z.cfg.DrainTimeout)
	defer stopWork()
	z.workers = z.startWorkers(ctx, workCtx, log)
	defer z.finishWorkers(log)
	gapReason := pipeline.GapReasonStart
	for ctx.Err() == nil {
		received, err := z.session(ctx, gapReason, log)
		if ctx.Err() != nil {
			break
		}
		var refused *ZMTPViolationError
		if errors.As(err, &refused) {
			z.metrics.Malformed.WithLabelValues(SourceZeroMQ, refused.Reason).Inc()
		}
		var disc *disconnect
		switch {
		case errors.As(err, &disc):
			gapReason = disc.reason
			z.metrics.Reconnects.WithLabelValues(disc.reason).Inc()
			log.WithError(disc.err).WithField("reason", disc.reason).Warn("zeromq connection lost; reconnecting")
		default:
			// Dial failed; the gap reason of the last disconnect still applies.
			z.metrics.DialFailures.Inc()
			log.WithError(err).Warn("zeromq connect failed; retrying")
		}
		if received {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// disconnect ends a session that was connected.
type disconnect struct {
	reason string // pipeline.GapReasonReceiveError or pipeline.GapReasonHeartbeatTimeout
	err    error
}

func (d *disconnect) Error() string { return d.reason + ": " + d.err.Error() }
func (d *disconnect) Unwrap() error { return d.err }

var errHeartbeatTimeout = errors.New("no message within the heartbeat timeout")

type received struct {
	msg zmq4.Msg
	err error
}

// session runs one socket from dial to close. It returns a *disconnect after a connection was
// established, another error if dialling failed, and nil when ctx ended. received reports
// whether any message arrived.
func (z *ZeroMQ) session(ctx context.Context, gapReason string, log *logrus.Entry) (gotMessage bool, err error) {
	sockCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sock, err := z.dial(sockCtx, log)
	if err != nil {
		return false, err
	}

	msgs := make(chan received, 64)
	recvDone := make(chan struct{})
	go receiveLoop(sockCtx, sock, msgs, recvDone)
	defer func() {
		cancel()
		_ = sock.Close()
		<-recvDone
		z.metrics.Connected.Set(0)
	}()

	z.metrics.Connected.Set(1)
	log.WithField("gap_reason", gapReason).Info("zeromq connected")
	z.reportGap(ctx, z.seenUntil, gapReason)
	z.seenUntil = z.now()

	watchdog := time.NewTimer(z.cfg.HeartbeatTimeout)
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return gotMessage, nil
		case <-watchdog.C:
			return gotMessage, &disconnect{reason: pipeline.GapReasonHeartbeatTimeout, err: fmt.Errorf("%w (%s)", errHeartbeatTimeout, z.cfg.HeartbeatTimeout)}
		case r := <-msgs:
			if r.err != nil {
				return gotMessage, &disconnect{reason: pipeline.GapReasonReceiveError, err: r.err}
			}
			gotMessage = true
			z.handleMessage(ctx, r.msg, log)
			// The timer restarts after handling, so a slow Handler is not mistaken for silence.
			watchdog.Reset(z.cfg.HeartbeatTimeout)
		}
	}
}

// dial connects a fresh SUB socket, completes the handshake within DialTimeout and subscribes
// to MISP's topics. The socket lives until ctx ends or it is closed. An error after the
// connection was established is a *disconnect.
func (z *ZeroMQ) dial(ctx context.Context, log *logrus.Entry) (zmq4.Socket, error) {
	guard := &dialGuard{handshakeTimeout: z.cfg.DialTimeout, maxFrameBytes: z.cfg.MaxFrameBytes}
	opts := []zmq4.Option{
		zmq4.WithAutomaticReconnect(false),
		zmq4.WithDialerMaxRetries(0),
		zmq4.WithDialerTimeout(z.cfg.DialTimeout),
		zmq4.WithLogger(stdlog.New(logWriter{log}, "zmq4: ", 0)),
	}
	if z.cfg.Username != "" {
		// A fresh PLAIN mechanism per socket: zmq4's client forgets the credentials after its
		// first handshake, which is why its own reconnect never recovers with PLAIN.
		opts = append(opts, zmq4.WithSecurity(plain.Security(z.cfg.Username, z.cfg.Password)))
	}
	sock := zmq4.NewSub(context.WithValue(ctx, dialGuardKey{}, guard), opts...)
	if err := sock.Dial(z.endpoint); err != nil {
		_ = sock.Close()
		if isTimeout(err) {
			return nil, fmt.Errorf("dial %s (no handshake within the dial timeout of %s: the publisher accepted the connection but did not answer): %w", z.cfg.Endpoint, z.cfg.DialTimeout, err)
		}
		var violated *ZMTPViolationError
		if z.cfg.Username != "" && isHandshakeError(err) && !errors.As(err, &violated) {
			return nil, fmt.Errorf("dial %s (the handshake failed; check the PLAIN username and password): %w", z.cfg.Endpoint, err)
		}
		return nil, fmt.Errorf("dial %s: %w", z.cfg.Endpoint, err)
	}
	guard.handshakeDone()
	for _, topic := range subscriptions {
		if err := sock.SetOption(zmq4.OptionSubscribe, topic); err != nil {
			_ = sock.Close()
			return nil, &disconnect{reason: pipeline.GapReasonReceiveError, err: fmt.Errorf("subscribe %q: %w", topic, err)}
		}
	}
	return sock, nil
}

// Probe connects once, completing the ZeroMQ handshake (PLAIN included), and closes the
// connection: `listener check` uses it to show that the endpoint and credentials work.
func (z *ZeroMQ) Probe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sock, err := z.dial(ctx, z.log.WithField("component", "zeromq-probe"))
	if err != nil {
		return err
	}
	cancel()
	_ = sock.Close()
	drain(sock)
	return nil
}

// receiveLoop hands messages over to the session; zmq4's Recv has no context or timeout and
// returns only when a message arrives or the socket closes.
func receiveLoop(ctx context.Context, sock zmq4.Socket, out chan<- received, done chan<- struct{}) {
	defer close(done)
	for {
		msg, err := sock.Recv()
		select {
		case out <- received{msg: msg, err: err}:
		case <-ctx.Done():
			drain(sock)
			return
		}
		if err != nil {
			// Wait for the session to close the socket, then let zmq4's reader goroutines finish.
			<-ctx.Done()
			drain(sock)
			return
		}
	}
}

// drain empties zmq4's internal read queue after the socket is closed. Its per-connection reader
// goroutine blocks forever on a full queue, so leaving messages in it leaks the goroutine. A
// closed socket's Recv picks at random between the cancelled context and a queued message, so a
// long run of errors means the queue is empty.
func drain(sock zmq4.Socket) {
	for errs := 0; errs < 32; {
		if _, err := sock.Recv(); err != nil {
			errs++
		} else {
			errs = 0
		}
	}
}

func (z *ZeroMQ) handleMessage(ctx context.Context, msg zmq4.Msg, log *logrus.Entry) {
	receivedAt := z.now()
	previous := z.seenUntil
	z.seenUntil = receivedAt
	z.metrics.LastMessage.Set(float64(receivedAt.UnixNano()) / 1e9)

	out, err := decodeFrames(msg.Frames, receivedAt)
	var bad *MalformedError
	switch {
	case errors.As(err, &bad):
		z.metrics.Malformed.WithLabelValues(SourceZeroMQ, bad.Reason).Inc()
		log.WithError(err).WithField("topic", frameTopic(msg.Frames)).Warn("skipping malformed zeromq message")
		return
	case err != nil:
		z.metrics.Malformed.WithLabelValues(SourceZeroMQ, ReasonInvalidJSON).Inc()
		log.WithError(err).Warn("skipping malformed zeromq message")
		return
	case out.heartbeat:
		z.metrics.Heartbeats.Inc()
		return
	case out.ignored != "":
		z.metrics.Ignored.WithLabelValues(SourceZeroMQ, out.ignored).Inc()
		return
	}
	n := *out.notice
	z.metrics.NoticesReceived.WithLabelValues(SourceZeroMQ, n.Kind.String()).Inc()
	z.received++
	z.workers.submit(ctx, noticeJob{notice: n, previous: previous, seq: z.received})
}

// noticeJob is a received notice waiting for a worker.
type noticeJob struct {
	notice pipeline.Notice
	// previous is the subscriber's seenUntil before the notice arrived: where a catch-up must
	// start if the notice cannot be handled.
	previous time.Time
	// seq numbers the notices in the order received, so that pending ones are recorded so.
	seq uint64
}

// kept is a notice left unhandled, with its place in the order received.
type kept struct {
	seq    uint64
	notice pipeline.Notice
}

// noticeWorkers hand notices to the Handler on a fixed set of goroutines, each notice on the
// worker its event UUID hashes to, so that notices about one event keep their order.
type noticeWorkers struct {
	queues []chan noticeJob
	wg     sync.WaitGroup
	// slots holds one token per notice received and not yet handled (MaxQueued in all).
	slots chan struct{}
	// submitted counts the notices submitted to a NoticeSubmitter and not answered yet.
	submitted sync.WaitGroup

	mu sync.Mutex
	// pending are the notices received but not handled when the drain ended.
	pending []kept
}

// drainContext returns the context the workers handle notices with: it outlives intake by at
// most drain, so queued notices are still handled after intake stopped.
func drainContext(intake context.Context, drain time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(intake))
	go func() {
		select {
		case <-intake.Done():
		case <-ctx.Done():
			return
		}
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// startWorkers starts the workers. intake ends when Run's context does; work ends DrainTimeout
// later, and a notice not handled by then is kept as pending.
func (z *ZeroMQ) startWorkers(intake, work context.Context, log *logrus.Entry) *noticeWorkers {
	w := &noticeWorkers{queues: make([]chan noticeJob, z.cfg.Workers), slots: make(chan struct{}, z.cfg.MaxQueued)}
	submitter, async := z.handler.(pipeline.NoticeSubmitter)
	for i := range w.queues {
		q := make(chan noticeJob, workerQueue)
		w.queues[i] = q
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for job := range q {
				switch {
				case work.Err() != nil:
					w.keep(job)
					w.release()
				case async:
					z.submitNotice(submitter, intake, work, job, w, log)
				default:
					if !z.handleNotice(intake, work, job, log) {
						w.keep(job)
					}
					w.release()
				}
			}
		}()
	}
	return w
}

// submitNotice hands a notice to a NoticeSubmitter without waiting; its slot is released once
// the notice is answered.
func (z *ZeroMQ) submitNotice(sub pipeline.NoticeSubmitter, intake, work context.Context, job noticeJob, w *noticeWorkers, log *logrus.Entry) {
	meta := job
	meta.notice.Event = nil // what a pending record needs; the payload goes to the submitter only
	w.submitted.Add(1)
	sub.SubmitNotice(work, job.notice, func(err error) {
		defer w.submitted.Done()
		defer w.release()
		if !z.noticeDone(intake, work, meta, err, log) {
			w.keep(meta)
		}
	})
}

func (w *noticeWorkers) release() { <-w.slots }

func (w *noticeWorkers) keep(job noticeJob) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, kept{seq: job.seq, notice: job.notice})
}

// submit queues a notice on its event's worker, waiting while that worker's queue is full
// (ZeroMQ then queues in zmq4 and the kernel) or until ctx ends; then the notice is kept as
// pending.
func (w *noticeWorkers) submit(ctx context.Context, job noticeJob) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(job.notice.EventUUID))
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		w.keep(job)
		return
	}
	select {
	case w.queues[h.Sum32()%uint32(len(w.queues))] <- job:
	case <-ctx.Done():
		w.release()
		w.keep(job)
	}
}

// close lets the workers finish what is queued, within the drain, waits for them and returns
// the notices left unhandled.
func (w *noticeWorkers) close() []pipeline.Notice {
	for _, q := range w.queues {
		close(q)
	}
	w.wg.Wait()
	w.submitted.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	slices.SortFunc(w.pending, func(a, b kept) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]pipeline.Notice, len(w.pending))
	for i, k := range w.pending {
		out[i] = k.notice
	}
	return out
}

// finishWorkers drains the workers and records what they left unhandled.
func (z *ZeroMQ) finishWorkers(log *logrus.Entry) {
	pending := z.workers.close()
	if len(pending) == 0 {
		return
	}
	z.metrics.PendingAtShutdown.Add(float64(len(pending)))
	recorder, ok := z.handler.(pipeline.PendingRecorder)
	if !ok {
		log.WithField("notices", len(pending)).Warn("shutdown left notices unhandled and the handler cannot record them; the next start's catch-up covers them")
		return
	}
	if err := recorder.RecordPending(pending); err != nil {
		log.WithError(err).WithField("notices", len(pending)).Error("recording the notices left unhandled at shutdown failed; the next start's catch-up covers them")
		return
	}
	log.WithField("notices", len(pending)).Info("recorded the notices left unhandled at shutdown; the next start applies them first")
}

// handleNotice hands one notice to the Handler with the work context. It returns false when the
// notice failed during shutdown (intake ended): it is then kept as pending, not reported as a gap.
func (z *ZeroMQ) handleNotice(intake, work context.Context, job noticeJob, log *logrus.Entry) bool {
	return z.noticeDone(intake, work, job, z.handler.HandleNotice(work, job.notice), log)
}

// noticeDone takes the outcome of one notice. It returns false when the notice failed during
// shutdown (intake ended): it is then kept as pending, not reported as a gap.
func (z *ZeroMQ) noticeDone(intake, work context.Context, job noticeJob, err error, log *logrus.Entry) bool {
	if err == nil {
		return true
	}
	if intake.Err() != nil {
		return false
	}
	n := job.notice
	z.metrics.HandlerErrors.WithLabelValues(SourceZeroMQ).Inc()
	log.WithError(err).WithFields(logrus.Fields{"event_uuid": n.EventUUID, "kind": n.Kind.String()}).
		Error("handling zeromq notice failed; asking the reconciler to catch up")
	z.reportGap(work, job.previous, pipeline.GapReasonHandlerError)
	return true
}

func (z *ZeroMQ) reportGap(ctx context.Context, since time.Time, reason string) {
	z.metrics.Gaps.WithLabelValues(reason).Inc()
	z.onGap(ctx, since, reason)
}

// frameTopic returns the topic of a message for logging, truncated and only when printable.
func frameTopic(frames [][]byte) string {
	if len(frames) == 0 {
		return ""
	}
	topic, _, _ := strings.Cut(string(frames[0][:min(len(frames[0]), 64)]), " ")
	for _, r := range topic {
		if r < 0x20 || r > 0x7e {
			return "(binary)"
		}
	}
	return topic
}

// isHandshakeError reports whether a Dial error happened after TCP connected, which with PLAIN
// usually means the credentials were refused (zmq4 does not decode libzmq's ERROR command).
// isTimeout reports whether err is a deadline passing (the handshake bound of dialGuard), not
// a refusal by the publisher. zmq4 flattens the cause into its message, hence the text check.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "i/o timeout") || strings.Contains(s, "deadline exceeded")
}

func isHandshakeError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "could not open a ZMTP connection")
}

// logWriter sends zmq4's diagnostics to logrus at debug level; the supervisor logs what matters.
type logWriter struct{ log *logrus.Entry }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// String describes the configuration with the password redacted, so printing it is safe.
func (c ZeroMQConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return fmt.Sprintf("{Endpoint:%s Username:%s Password:%s HeartbeatTimeout:%s ReconnectMin:%s ReconnectMax:%s DialTimeout:%s Workers:%d}",
		c.Endpoint, c.Username, pw, c.HeartbeatTimeout, c.ReconnectMin, c.ReconnectMax, c.DialTimeout, c.Workers)
}

// GoString is String, so %#v does not print the password either.
func (c ZeroMQConfig) GoString() string { return c.String() }
