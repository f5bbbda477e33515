package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/defender"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/reconcile"
	"github.com/mispsentinel/listener/store"
)

// SinkStatus is one sink's line of `listener status`.
type SinkStatus struct {
	Name        string `json:"name"`
	OutboxDepth int64  `json:"outbox_depth"`
	DeadLetters int64  `json:"dead_letters"`
	// LiveObjects are live in Sentinel: it accepted a version of them and they are not
	// revoked (a newer version may be queued).
	LiveObjects int64 `json:"live_objects"`
	// QueuedObjects are live in the store but Sentinel accepted no version of them yet
	// (never uploaded, or dead-lettered): not live in Sentinel.
	QueuedObjects int64 `json:"queued_objects"`
	// RevokedObjects have ended: revoked (the revocation possibly still queued) or expired.
	RevokedObjects int64     `json:"revoked_objects"`
	OldestQueuedAt time.Time `json:"oldest_queued_at,omitzero"`
	LastUploadAt   time.Time `json:"last_upload_at,omitzero"`
	LastEnqueuedAt time.Time `json:"last_enqueued_at,omitzero"`
	// ConfigError says why the sink was never started (its client could not be built).
	ConfigError string `json:"config_error,omitempty"`
	// State is "up" or "failing" (a configuration error: Sentinel refused its credential,
	// role or workspace; its objects stay queued and it is retried with backoff, its secret
	// read again each time). Only a running daemon knows it; empty otherwise.
	State string `json:"state,omitempty"`
	// Stopped is the error the failing sink last hit, on one line.
	Stopped string `json:"stopped,omitempty"`
	// FailingSince and NextRetry are when the sink started failing and when it is tried
	// again.
	FailingSince time.Time `json:"failing_since,omitzero"`
	NextRetry    time.Time `json:"next_retry,omitzero"`
	// Defender is the budget of a defender sink's tenant (shared by the tenant's sinks).
	Defender *defender.BudgetSummary `json:"defender,omitempty"`
}

// Problem is the sink's configuration or stop error on one line (the Azure SDK's multi-line
// texts folded), "" when it has none.
func (s SinkStatus) Problem() string {
	if s.ConfigError != "" {
		return pusher.OneLine(s.ConfigError)
	}
	return pusher.OneLine(s.Stopped)
}

// Status is the daemon's state as `listener status` shows it.
type Status struct {
	Sinks                    []SinkStatus `json:"sinks"`
	LastFullReconcile        time.Time    `json:"last_full_reconcile,omitzero"`
	LastIncrementalReconcile time.Time    `json:"last_incremental_reconcile,omitzero"`
}

// ReadStatus reads the status of the named sinks from a store.
func ReadStatus(st *store.Store, sinks []string) (*Status, error) {
	out := &Status{Sinks: []SinkStatus{}}
	for _, name := range sinks {
		s, err := st.Stats(name)
		if err != nil {
			return nil, fmt.Errorf("status of sink %s: %w", name, err)
		}
		c, err := st.StateCounts(name)
		if err != nil {
			return nil, fmt.Errorf("status of sink %s: %w", name, err)
		}
		out.Sinks = append(out.Sinks, SinkStatus{
			Name: name, OutboxDepth: s.OutboxDepth, DeadLetters: s.DeadLetters,
			LiveObjects: c.Accepted, QueuedObjects: c.Queued, RevokedObjects: c.Revoked,
			OldestQueuedAt: s.OldestEnqueuedAt, LastUploadAt: s.LastAccepted, LastEnqueuedAt: s.LastEnqueued,
		})
	}
	var err error
	if out.LastFullReconcile, err = st.Watermark(reconcile.WatermarkFull); err != nil {
		return nil, fmt.Errorf("read full reconcile watermark: %w", err)
	}
	if out.LastIncrementalReconcile, err = st.Watermark(reconcile.WatermarkIncremental); err != nil {
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
			st.Sinks[i].ConfigError = pusher.OneLine(s.err.Error())
		}
		if s.pusher != nil {
			ps := s.pusher.State()
			st.Sinks[i].State = "up"
			if !ps.Up {
				st.Sinks[i].State = "failing"
				st.Sinks[i].Stopped = fmt.Sprintf("failing since %s, next retry %s: %s",
					ps.FailingSince.UTC().Format(time.RFC3339), ps.NextRetry.UTC().Format(time.RFC3339), ps.LastError)
				st.Sinks[i].FailingSince, st.Sinks[i].NextRetry = ps.FailingSince, ps.NextRetry
			}
		}
		if s.defender != nil {
			sum := s.defender.Tenant().Summary()
			st.Sinks[i].Defender = &sum
		}
	}
	return st, nil
}

// IndicatorStanding is where one indicator stands in a defender sink's budget.
type IndicatorStanding struct {
	Sink     string `json:"sink"`
	Standing string `json:"standing"`
	Held     bool   `json:"held"`
	// DefenderID is the indicator's id in MDE ("" when MDE does not hold it).
	DefenderID string `json:"defender_id,omitempty"`
}

// DefenderStanding says, for every defender sink, whether the indicator (its STIX id, as
// `convert` and the dead-letter list show it) holds a slot and why, or which indicator
// outranks it.
func (d *Daemon) DefenderStanding(id string) []IndicatorStanding {
	var out []IndicatorStanding
	for _, s := range d.sinks {
		if s.defender != nil {
			out = append(out, standingOf(s.name, s.defender.Tenant(), id))
		}
	}
	return out
}

// ReadDefenderStanding is DefenderStanding from a store no daemon holds.
func ReadDefenderStanding(st *store.Store, cfg *config.Config, id string) ([]IndicatorStanding, error) {
	var out []IndicatorStanding
	tenants := map[string]*defender.Tenant{}
	for _, s := range cfg.Sinks {
		if s.Kind != config.SinkDefender {
			continue
		}
		key := s.DefenderTenant()
		t, ok := tenants[key]
		if !ok {
			var err error
			// No client: the tenant is only read.
			if t, err = defender.NewTenant(nil, st, "defender/"+key, defenderTenantOptions(s, time.Now)); err != nil {
				return nil, err
			}
			tenants[key] = t
		}
		out = append(out, standingOf(s.Name, t, id))
	}
	return out, nil
}

func standingOf(sink string, t *defender.Tenant, id string) IndicatorStanding {
	st := t.Standing(sink, id)
	return IndicatorStanding{Sink: sink, Standing: st.String(), Held: st.Held, DefenderID: st.MDEID}
}

func (d *Daemon) serveStanding(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d.DefenderStanding(r.URL.Query().Get("id")))
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
