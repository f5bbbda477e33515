package listener

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the sources' Prometheus collectors. Label values come from fixed sets (source,
// kind, reason and topic constants, HTTP status codes the webhook sends), so cardinality stays
// bounded. One Metrics is shared by all sources of a process.
type Metrics struct {
	// NoticesReceived counts notices handed to the Handler, by source and kind.
	NoticesReceived *prometheus.CounterVec
	// Malformed counts frames and bodies that were skipped or rejected, by source and reason.
	Malformed *prometheus.CounterVec
	// Ignored counts well-formed messages that carry nothing for us, by source and reason.
	Ignored *prometheus.CounterVec
	// HandlerErrors counts notices the Handler failed to make durable, by source.
	HandlerErrors *prometheus.CounterVec
	// Heartbeats counts misp_json_self messages.
	Heartbeats prometheus.Counter
	// Reconnects counts ZeroMQ socket re-creations, by the reason of the disconnect.
	Reconnects *prometheus.CounterVec
	// DialFailures counts failed ZeroMQ connection attempts.
	DialFailures prometheus.Counter
	// Gaps counts gaps reported to the reconciler, by reason.
	Gaps *prometheus.CounterVec
	// PendingAtShutdown counts ZeroMQ notices still unhandled when the shutdown drain ended,
	// recorded for the next start.
	PendingAtShutdown prometheus.Counter
	// Connected is 1 while the ZeroMQ subscriber holds a connection.
	Connected prometheus.Gauge
	// LastMessage is the Unix time of the last ZeroMQ message, heartbeats included.
	LastMessage prometheus.Gauge
	// WebhookResponses counts webhook HTTP responses by status code.
	WebhookResponses *prometheus.CounterVec
	// WebhookInflightBytes is the body bytes reserved by webhook calls being read or handled.
	WebhookInflightBytes prometheus.Gauge
	// WebhookBudgetFull counts webhook calls refused with 503 because the in-flight body
	// budget was full.
	WebhookBudgetFull prometheus.Counter
	// AuthFailures counts webhook calls refused for a missing or wrong token.
	AuthFailures prometheus.Counter
}

// NewMetrics creates the collectors and registers them on reg. A nil reg leaves them
// unregistered, which suits tests. Registering twice on one registry panics, as with any
// Prometheus collector.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "listener"
	m := &Metrics{
		NoticesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "source", Name: "notices_received_total",
			Help: "Event notices received and handed to the store, by source and kind.",
		}, []string{"source", "kind"}),
		Malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "source", Name: "malformed_total",
			Help: "ZeroMQ frames and webhook bodies skipped or rejected as malformed, by source and reason.",
		}, []string{"source", "reason"}),
		Ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "source", Name: "ignored_total",
			Help: "Well-formed messages that carry no event notice, by source and reason.",
		}, []string{"source", "reason"}),
		HandlerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "source", Name: "handler_errors_total",
			Help: "Notices the store failed to make durable, by source.",
		}, []string{"source"}),
		Heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "heartbeats_total",
			Help: "misp_json_self heartbeats received.",
		}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "reconnects_total",
			Help: "ZeroMQ subscriber sockets closed and recreated, by the reason of the disconnect.",
		}, []string{"reason"}),
		DialFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "dial_failures_total",
			Help: "Failed ZeroMQ connection attempts (network or authentication).",
		}),
		Gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "gaps_total",
			Help: "Periods of possibly missed ZeroMQ messages reported for catch-up, by reason.",
		}, []string{"reason"}),
		PendingAtShutdown: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "pending_at_shutdown_total",
			Help: "ZeroMQ notices still unhandled when the shutdown drain ended, recorded for the next start.",
		}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "connected",
			Help: "1 while the ZeroMQ subscriber is connected, else 0.",
		}),
		LastMessage: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "zeromq", Name: "last_message_timestamp_seconds",
			Help: "Unix time of the last ZeroMQ message received, heartbeats included.",
		}),
		WebhookResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "webhook", Name: "responses_total",
			Help: "Webhook HTTP responses by status code.",
		}, []string{"code"}),
		WebhookInflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "webhook", Name: "inflight_body_bytes",
			Help: "Body bytes reserved by webhook calls being read or handled.",
		}),
		WebhookBudgetFull: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "webhook", Name: "budget_full_total",
			Help: "Webhook calls answered 503 because the in-flight body budget was full.",
		}),
		AuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "webhook", Name: "auth_failures_total",
			Help: "Webhook calls refused for a missing or wrong token.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.NoticesReceived, m.Malformed, m.Ignored, m.HandlerErrors, m.Heartbeats,
			m.Reconnects, m.DialFailures, m.Gaps, m.PendingAtShutdown, m.Connected, m.LastMessage, m.WebhookResponses,
			m.WebhookInflightBytes, m.WebhookBudgetFull, m.AuthFailures)
	}
	return m
}
