package sentinel

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testIndicator returns a minimal valid STIX 2.1 indicator numbered n; edit may change or
// delete fields before encoding.
func testIndicator(n int, modified time.Time, edit func(map[string]any)) json.RawMessage {
	ts := stixTime(modified)
	obj := map[string]any{
		"type":         "indicator",
		"spec_version": "2.1",
		"id":           testID(n),
		"created":      ts,
		"modified":     ts,
		"valid_from":   ts,
		"pattern":      fmt.Sprintf("[ipv4-addr:value = '10.%d.%d.%d']", n>>16&255, n>>8&255, n&255),
		"pattern_type": "stix",
		"name":         fmt.Sprintf("test indicator %d", n),
	}
	if edit != nil {
		edit(obj)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return b
}

func testID(n int) string { return fmt.Sprintf("indicator--%08x-0000-4000-8000-000000000000", n) }

func testBatch(n int, modified time.Time) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = testIndicator(i, modified, nil)
	}
	return out
}

// stubCredential hands out numbered tokens and records every request.
type stubCredential struct {
	mu         sync.Mutex
	calls      int
	withClaims int
}

func (s *stubCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if opts.Claims != "" {
		s.withClaims++
	}
	return azcore.AccessToken{Token: fmt.Sprintf("token-%d", s.calls), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// unlimited is a registry whose limiters never make a test wait.
func unlimited() *Limiters {
	return NewLimiters(LimiterOptions{RequestsPerMinute: 1e9})
}
