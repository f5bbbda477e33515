package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mispsentinel/listener/store"
)

// SinkStatus is one sink's line of `listener status`.
type SinkStatus struct {
	Name           string    `json:"name"`
	OutboxDepth    int64     `json:"outbox_depth"`
	DeadLetters    int64     `json:"dead_letters"`
	LiveObjects    int64     `json:"live_objects"`
	OldestQueuedAt time.Time `json:"oldest_queued_at,omitzero"`
	LastUploadAt   time.Time `json:"last_upload_at,omitzero"`
	LastEnqueuedAt time.Time `json:"last_enqueued_at,omitzero"`
	// ConfigError says why the sink was never started (its client could not be built).
	ConfigError string `json:"config_error,omitempty"`
	// Stopped says why a running sink stopped (Sentinel refused its credential, role or
	// workspace); its objects stay queued until the configuration is fixed and the daemon
	// restarted. Only a running daemon knows it.
	Stopped string `json:"stopped,omitempty"`
}

// Problem is the sink's configuration or stop error, "" when it has none.
func (s SinkStatus) Problem() string {
	if s.ConfigError != "" {
		return s.ConfigError
	}
	return s.Stopped
}

// Status is the daemon's state as `listener status` shows it.
type Status struct {
	Sinks                    []SinkStatus `json:"sinks"`
	LastFullReconcile        time.Time    `json:"last_full_reconcile,omitzero"`
	LastIncrementalReconcile time.Time    `json:"last_incremental_reconcile,omitzero"`
}

// ReadStatus reads the status of the named sinks from a store.
func ReadStatus(st *store.Store, sinks []string) (*Status, error) {
	out := &Status{}
	for _, name := range sinks {
		s, err := st.Stats(name)
		if err != nil {
			return nil, fmt.Errorf("status of sink %s: %w", name, err)
		}
		out.Sinks = append(out.Sinks, SinkStatus{
			Name: name, OutboxDepth: s.OutboxDepth, DeadLetters: s.DeadLetters, LiveObjects: s.Live,
			OldestQueuedAt: s.OldestEnqueuedAt, LastUploadAt: s.LastAccepted, LastEnqueuedAt: s.LastEnqueued,
		})
	}
	var err error
	if out.LastFullReconcile, err = st.Watermark("reconcile/full"); err != nil {
		return nil, fmt.Errorf("read full reconcile watermark: %w", err)
	}
	if out.LastIncrementalReconcile, err = st.Watermark("reconcile/incremental"); err != nil {
		return nil, fmt.Errorf("read incremental reconcile watermark: %w", err)
	}
	return out, nil
}

// Status returns the running daemon's status.
func (d *Daemon) Status() (*Status, error) {
	names := make([]string, len(d.sinks))
	for i, s := range d.sinks {
		names[i] = s.name
	}
	st, err := ReadStatus(d.store, names)
	if err != nil {
		return nil, err
	}
	for i, s := range d.sinks {
		if s.err != nil {
			st.Sinks[i].ConfigError = s.err.Error()
		}
		if err := s.stoppedErr(); err != nil {
			st.Sinks[i].Stopped = err.Error()
		}
	}
	return st, nil
}

func (d *Daemon) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	st, err := d.Status()
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(st)
}
