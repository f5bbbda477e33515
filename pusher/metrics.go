package pusher

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mispsentinel/listener/store"
)

// Metrics are the pusher's Prometheus collectors. A nil *Metrics records nothing.
type Metrics struct {
	uploaded      *prometheus.CounterVec
	revoked       *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	fatalErrors   *prometheus.CounterVec
	retries       *prometheus.CounterVec
	uploadSeconds *prometheus.HistogramVec
	held          *prometheus.CounterVec
	up            *prometheus.GaugeVec
	failingSince  *prometheus.GaugeVec
}

// NewMetrics creates the pusher's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		uploaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_indicators_uploaded_total",
			Help: "Upserts the sink accepted, per sink (revocations are counted apart).",
		}, []string{"sink"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_indicators_revoked_total",
			Help: "Revocations the sink accepted, per sink.",
		}, []string{"sink"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_indicators_rejected_total",
			Help: "Objects the sink rejected and the pusher dead-lettered, per sink.",
		}, []string{"sink"}),
		fatalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_sink_fatal_errors_total",
			Help: "Times a sink started failing on a configuration error (401 after refresh, 403, 404).",
		}, []string{"sink"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_upload_retries_total",
			Help: "Upload attempts the sink did not settle and that were retried, per sink and reason (throttled = HTTP 429, server_error = HTTP 5xx, network, other).",
		}, []string{"sink", "reason"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_relationships_held_total",
			Help: "Relationships held in the outbox because an object they name has not reached the sink (not yet sent, or dead-lettered), per sink; each hold counted once.",
		}, []string{"sink"}),
		uploadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "listener_upload_duration_seconds",
			Help:    "Time to deliver one batch, retries and throttling included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"sink"}),
	}
	m.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "listener_sink_up",
		Help: "1 while the sink delivers, 0 while it is failing on a configuration error (its objects stay queued).",
	}, []string{"sink"})
	m.failingSince = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "listener_sink_failing_since_seconds",
		Help: "Unix time at which the sink started failing; 0 while it is up.",
	}, []string{"sink"})
	reg.MustRegister(m.uploaded, m.revoked, m.rejected, m.fatalErrors, m.retries, m.held, m.uploadSeconds, m.up, m.failingSince)
	return m
}

func (m *Metrics) observeUpload(sink string, d time.Duration) {
	if m == nil {
		return
	}
	m.uploadSeconds.WithLabelValues(sink).Observe(d.Seconds())
}

// observeOutcome counts a committed outcome: accepted upserts, accepted revocations and
// rejections, each once.
func (m *Metrics) observeOutcome(sink string, b *store.Batch, o store.Outcome) {
	if m == nil {
		return
	}
	revoked := 0
	for _, i := range o.Accepted {
		if b.Items[i].Revoke {
			revoked++
		}
	}
	m.uploaded.WithLabelValues(sink).Add(float64(len(o.Accepted) - revoked))
	m.revoked.WithLabelValues(sink).Add(float64(revoked))
	m.rejected.WithLabelValues(sink).Add(float64(len(o.Rejected)))
}

// observeHeld counts the relationships a Begin newly held back.
func (m *Metrics) observeHeld(sink string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.held.WithLabelValues(sink).Add(float64(n))
}

func (m *Metrics) fatal(sink string) {
	if m == nil {
		return
	}
	m.fatalErrors.WithLabelValues(sink).Inc()
}

func (m *Metrics) retry(sink, reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(sink, reason).Inc()
}

func (m *Metrics) setUp(sink string) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(sink).Set(1)
	m.failingSince.WithLabelValues(sink).Set(0)
}

func (m *Metrics) setFailing(sink string, since time.Time) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(sink).Set(0)
	m.failingSince.WithLabelValues(sink).Set(float64(since.Unix()))
}
