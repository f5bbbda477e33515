package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/internal/control"
	"github.com/mispsentinel/listener/internal/httpserve"
	"github.com/mispsentinel/listener/store"
)

// DeadLetter is one dead letter as `listener deadletters list` shows it (and its --json
// prints).
type DeadLetter struct {
	Sink       string    `json:"sink"`
	Seq        uint64    `json:"seq"`
	ID         string    `json:"id"`
	Revoke     bool      `json:"revoke"`
	Message    string    `json:"message"`
	RejectedAt time.Time `json:"rejected_at"`
	// Object is the STIX object as it was sent (JSON).
	Object RawJSON `json:"object"`
}

// RawJSON is a JSON value carried verbatim; an empty one is null.
type RawJSON []byte

// MarshalJSON implements json.Marshaler.
func (r RawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (r *RawJSON) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// Requeued is how many dead letters of one sink `deadletters requeue` put back in its outbox.
type Requeued struct {
	Sink     string `json:"sink"`
	Requeued int    `json:"requeued"`
}

// RequeueRequest is the body of the control endpoint's requeue: one sink or every sink (""),
// the given sequence numbers or all (none).
type RequeueRequest struct {
	Sink string   `json:"sink,omitempty"`
	Seqs []uint64 `json:"seqs,omitempty"`
}

// errNoSuchSink is a request naming a sink the configuration does not have.
var errNoSuchSink = errors.New("no such sink")

// selectSinks returns the configured sink names, or only the one named (an error naming the
// configured ones when there is no such sink).
func selectSinks(cfg *config.Config, only string) ([]string, error) {
	var names []string
	for _, s := range cfg.Sinks {
		names = append(names, s.Name)
	}
	if only == "" {
		return names, nil
	}
	if !slices.Contains(names, only) {
		return nil, fmt.Errorf("sink %q: %w (have %s)", only, errNoSuchSink, strings.Join(names, ", "))
	}
	return []string{only}, nil
}

// ListDeadLetters lists up to limit dead letters of each selected sink (every sink when sink
// is ""), oldest first; never nil, so its JSON is [] when there is none.
func ListDeadLetters(st *store.Store, cfg *config.Config, sink string, limit int) ([]DeadLetter, error) {
	names, err := selectSinks(cfg, sink)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	for _, name := range names {
		dls, err := st.DeadLetters(name, limit)
		if err != nil {
			return nil, err
		}
		for _, dl := range dls {
			out = append(out, DeadLetter{Sink: name, Seq: dl.Seq, ID: dl.ID, Revoke: dl.Revoke,
				Message: dl.Message, RejectedAt: dl.RejectedAt, Object: RawJSON(dl.Object)})
		}
	}
	return out, nil
}

// RequeueDeadLetters puts dead letters back in their sink's outbox (see store.Store.Requeue):
// the sequence numbers seqs (all when nil) of the selected sinks (every sink when sink is "").
func RequeueDeadLetters(st *store.Store, cfg *config.Config, sink string, seqs []uint64, now time.Time) ([]Requeued, error) {
	names, err := selectSinks(cfg, sink)
	if err != nil {
		return nil, err
	}
	out := []Requeued{}
	for _, name := range names {
		n, err := st.Requeue(name, seqs, now)
		if err != nil {
			return out, err
		}
		out = append(out, Requeued{Sink: name, Requeued: n})
	}
	return out, nil
}

// controlHandler serves the control routes below control.Prefix: status, dead letters (list
// and requeue), the Defender standing of an indicator and trace.
func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	p := control.Prefix
	mux.HandleFunc("GET "+p+"/status", func(w http.ResponseWriter, _ *http.Request) {
		st, err := d.Status()
		if err != nil {
			control.WriteError(w, http.StatusInternalServerError, err)
			return
		}
		control.WriteJSON(w, st)
	})
	mux.HandleFunc("GET "+p+"/status/defender", func(w http.ResponseWriter, r *http.Request) {
		out := d.DefenderStanding(r.URL.Query().Get("id"))
		if out == nil {
			out = []IndicatorStanding{}
		}
		control.WriteJSON(w, out)
	})
	mux.HandleFunc("GET "+p+"/deadletters", func(w http.ResponseWriter, r *http.Request) {
		limit := 0
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				control.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a number", v))
				return
			}
			limit = n
		}
		out, err := ListDeadLetters(d.store, d.cfg, r.URL.Query().Get("sink"), limit)
		if err != nil {
			control.WriteError(w, statusOf(err), err)
			return
		}
		control.WriteJSON(w, out)
	})
	mux.HandleFunc("POST "+p+"/deadletters/requeue", func(w http.ResponseWriter, r *http.Request) {
		var req RequeueRequest
		if err := decodeBody(r, &req); err != nil {
			control.WriteError(w, http.StatusBadRequest, err)
			return
		}
		out, err := RequeueDeadLetters(d.store, d.cfg, req.Sink, req.Seqs, d.opts.Now())
		if err != nil {
			control.WriteError(w, statusOf(err), err)
			return
		}
		for _, q := range out {
			d.log.WithField("sink", q.Sink).WithField("requeued", q.Requeued).Info("dead letters re-queued through the control endpoint")
		}
		control.WriteJSON(w, out)
	})
	mux.HandleFunc("GET "+p+"/trace", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), config.ControlHandlerTimeout)
		defer cancel()
		q := r.URL.Query()
		out, err := d.Trace(ctx, q.Get("q"), q.Get("sink"))
		if err != nil {
			control.WriteError(w, statusOf(err), err)
			return
		}
		control.WriteJSON(w, out)
	})
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		control.WriteError(w, http.StatusNotFound, fmt.Errorf("no control route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// maxControlBody bounds a control request's body.
const maxControlBody = 1 << 20

// decodeBody decodes a control request's JSON body into v, refusing unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode the request: %w", err)
	}
	return nil
}

// statusOf maps an error of a control request to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errNoSuchSink), errors.Is(err, ErrBadTraceQuery):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// startControl serves the control routes on the control socket until ctx ends, after logging
// its path. It returns the listener's error; nil when the socket is off.
func (d *Daemon) startControl(ctx context.Context, goRun func(string, func(context.Context) error)) error {
	path := d.cfg.ControlSocket()
	if path == "" {
		d.log.Info("control socket off (control.socket: off): status, deadletters and trace open the store, which the daemon holds")
		return nil
	}
	ln, err := control.Listen(path)
	if errors.Is(err, control.ErrPathTooLong) && d.cfg.Control.Socket == "" {
		// The default place is too deep for a socket: run without it, loudly.
		d.log.WithError(err).Warn("control socket off: status, deadletters and trace cannot reach this daemon until control.socket names a shorter path")
		return nil
	}
	if err != nil {
		return err
	}
	d.setAddr("control", path)
	d.log.WithField("address", "unix:"+path).Info("control endpoint listening")
	// The ops server's limits, but a trace may take longer to write than a status.
	limits := metricsLimits(d.cfg.Metrics)
	limits.WriteTimeout = config.ControlWriteTimeout
	if err := limits.Validate(); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	srv := httpserve.Server(d.controlHandler(), limits)
	goRun("control socket", func(ctx context.Context) error {
		go func() { <-ctx.Done(); shutdown(srv) }()
		if err := srv.Serve(netutil.LimitListener(ln, d.cfg.Metrics.MaxConnections)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}
