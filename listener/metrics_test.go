package listener

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mispsentinel/listener/pipeline"
)

func TestMetricsRegisterAndExpose(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.NoticesReceived.WithLabelValues(SourceZeroMQ, pipeline.Published.String()).Add(2)
	m.Malformed.WithLabelValues(SourceWebhook, ReasonBodyTooLarge).Inc()
	m.Gaps.WithLabelValues(pipeline.GapReasonStart).Inc()
	m.Connected.Set(1)

	want := `# HELP listener_source_malformed_total ZeroMQ frames and webhook bodies skipped or rejected as malformed, by source and reason.
# TYPE listener_source_malformed_total counter
listener_source_malformed_total{reason="body_too_large",source="webhook"} 1
# HELP listener_source_notices_received_total Event notices received and handed to the store, by source and kind.
# TYPE listener_source_notices_received_total counter
listener_source_notices_received_total{kind="published",source="zeromq"} 2
# HELP listener_zeromq_connected 1 while the ZeroMQ subscriber is connected, else 0.
# TYPE listener_zeromq_connected gauge
listener_zeromq_connected 1
# HELP listener_zeromq_gaps_total Periods of possibly missed ZeroMQ messages reported for catch-up, by reason.
# TYPE listener_zeromq_gaps_total counter
listener_zeromq_gaps_total{reason="start"} 1
`
	err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"listener_source_malformed_total", "listener_source_notices_received_total",
		"listener_zeromq_connected", "listener_zeromq_gaps_total")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("pedantic gather: %v", err)
	}
}

func TestConfigsRedactSecrets(t *testing.T) {
	z := ZeroMQConfig{Endpoint: "tcp://127.0.0.1:50000", Username: "misp", Password: "zmq-password"}
	w := WebhookConfig{Addr: ":8443", Token: "webhook-token"}
	for _, s := range []string{fmt.Sprint(z), fmt.Sprintf("%+v", z), fmt.Sprintf("%#v", z), fmt.Sprint(w), fmt.Sprintf("%+v", w), fmt.Sprintf("%#v", w)} {
		if strings.Contains(s, "zmq-password") || strings.Contains(s, "webhook-token") || !strings.Contains(s, "REDACTED") {
			t.Errorf("printed config %q leaks a secret or lacks the redaction marker", s)
		}
	}
}
