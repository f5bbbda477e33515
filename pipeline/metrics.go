package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mispsentinel/listener/stix"
)

// Metrics are the pipeline's Prometheus collectors. A nil *Metrics records nothing.
type Metrics struct {
	notices   *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	exported  *prometheus.CounterVec
	refetches prometheus.Histogram
}

// NewMetrics creates the pipeline's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_event_notices_applied_total",
			Help: "Real-time event notices applied to the store, by source (zeromq, webhook).",
		}, []string{"source"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_attributes_skipped_total",
			Help: "Attributes not exported, by sink and reason.",
		}, []string{"sink", "reason"}),
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "listener_attributes_exported_total",
			Help: "Attributes converted into at least one indicator, by sink.",
		}, []string{"sink"}),
		refetches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "listener_refetch_events_per_request",
			Help:    "Events asked for by each real-time re-fetch (one events/restSearch request with a list of uuids); its count is the number of re-fetch requests.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200},
		}),
	}
	reg.MustRegister(m.notices, m.skipped, m.exported, m.refetches)
	return m
}

func (m *Metrics) observeNotice(source string) {
	if m == nil {
		return
	}
	m.notices.WithLabelValues(source).Inc()
}

func (m *Metrics) observeRefetch(events int) {
	if m == nil {
		return
	}
	m.refetches.Observe(float64(events))
}

func (m *Metrics) observeConversion(sink string, r stix.Result) {
	if m == nil {
		return
	}
	for _, d := range r.Decisions {
		if len(d.Exported) == 0 {
			m.skipped.WithLabelValues(sink, string(d.Reason)).Inc()
		} else {
			m.exported.WithLabelValues(sink).Inc()
		}
	}
}
