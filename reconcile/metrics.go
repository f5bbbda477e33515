package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the reconciler's Prometheus collectors. A nil *Metrics records nothing.
type Metrics struct {
	runs        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	goneEvents  prometheus.Counter
	duration    *prometheus.HistogramVec
	undecodable prometheus.Counter
}

// NewMetrics creates the reconciler's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_reconcile_runs_total",
			Help: "Reconcile runs, by kind (full, incremental, event) and result (ok, failed).",
		}, []string{"kind", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "listener_reconcile_last_success_timestamp_seconds",
			Help: "Unix time at which the last successful reconcile of each kind started.",
		}, []string{"kind"}),
		goneEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "listener_reconcile_revoked_events_total",
			Help: "Events whose indicators a reconcile revoked because MISP deleted or filtered them out.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "listener_reconcile_duration_seconds",
			Help:    "Wall time of reconcile runs, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}, []string{"kind"}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "listener_reconcile_undecodable_events_total",
			Help: "Events MISP returned to a reconcile search that could not be decoded: skipped (never revoked for it) and tried again alone at the next run.",
		}),
	}
	reg.MustRegister(m.runs, m.lastSuccess, m.goneEvents, m.duration, m.undecodable)
	return m
}

func (m *Metrics) observe(rep *Report, ok bool) {
	if m == nil || rep == nil {
		return
	}
	result := "failed"
	if ok {
		result = "ok"
		m.lastSuccess.WithLabelValues(rep.Kind).Set(float64(rep.Started.Unix()))
	}
	m.runs.WithLabelValues(rep.Kind, result).Inc()
	m.goneEvents.Add(float64(rep.GoneEvents + rep.FilteredEvents))
	m.duration.WithLabelValues(rep.Kind).Observe(rep.Finished.Sub(rep.Started).Seconds())
}

func (m *Metrics) undecodableEvent() {
	if m != nil {
		m.undecodable.Inc()
	}
}
