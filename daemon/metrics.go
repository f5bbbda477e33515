package daemon

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/sentinel"
)

// WriteMetrics writes every metric of reg in Prometheus text exposition (tests, the demo's
// summary).
func WriteMetrics(w io.Writer, reg prometheus.Gatherer) error {
	families, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("encode metrics: %w", err)
		}
	}
	return nil
}

// Reasons of listener_upload_retries_total: a bounded set.
const (
	RetryThrottled   = "throttled"    // HTTP 429
	RetryServerError = "server_error" // HTTP 5xx
	RetryNetwork     = "network"      // no answer: connection error or timeout, or no token yet
	RetryOther       = "other"        // another retryable answer (e.g. an unreadable body)
)

// retryMetrics counts the retryable upload failures sentinel.Deliver reports, so that 429 and
// 5xx answers are visible per sink.
type retryMetrics struct {
	retries *prometheus.CounterVec
}

func newRetryMetrics(reg prometheus.Registerer) *retryMetrics {
	m := &retryMetrics{retries: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "listener_upload_retries_total",
		Help: "Upload attempts Sentinel did not accept and that were retried, per sink and reason (throttled = HTTP 429, server_error = HTTP 5xx, network, other).",
	}, []string{"sink", "reason"})}
	reg.MustRegister(m.retries)
	return m
}

// RetryReason classifies a retryable upload error into one of the Retry* reasons.
func RetryReason(err error) string {
	var re *sentinel.RetryableError
	if !errors.As(err, &re) {
		return RetryOther
	}
	switch {
	case re.Status == 429:
		return RetryThrottled
	case re.Status >= 500 && re.Status <= 599:
		return RetryServerError
	case re.Status == 0:
		return RetryNetwork
	}
	return RetryOther
}

// notifier returns the sentinel.RetryOptions.Notify of one sink: it counts the retry and logs
// it (throttling at debug level: it is Sentinel working as documented).
func (m *retryMetrics) notifier(sink string, log logrus.FieldLogger) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		reason := RetryReason(err)
		m.retries.WithLabelValues(sink, reason).Inc()
		entry := log.WithFields(logrus.Fields{"sink": sink, "reason": reason, "wait": wait.Round(time.Millisecond).String()}).WithError(err)
		if reason == RetryThrottled {
			entry.Debug("upload throttled; waiting as Sentinel asked")
			return
		}
		entry.Warn("upload failed; retrying")
	}
}
