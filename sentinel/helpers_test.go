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

	"github.com/mispsentinel/listener/pusher"
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

// Aliases keep the tests in the words of the classification they check.
type (
	Rejection      = pusher.Rejection
	RetryableError = pusher.RetryError
	FatalError     = pusher.FatalError
)

// uploadResult is what a test upload returns.
type uploadResult struct{ Rejected []Rejection }

// Upload sends objects through Send once, without pacing: the tests that use it make a
// handful of requests.
func (c *Client) Upload(ctx context.Context, objects []json.RawMessage) (uploadResult, error) {
	batch := make([]pusher.Object, len(objects))
	for i, o := range objects {
		var v struct{ ID string }
		_ = json.Unmarshal(o, &v)
		batch[i] = pusher.Object{ID: v.ID, Body: o}
	}
	rejected, err := c.Send(ctx, batch, func(context.Context) error { return nil })
	return uploadResult{Rejected: rejected}, err
}

// complete fills the fields the daemon always sets with the values of config.Default().
func complete(c Config) Config {
	if c.API == "" {
		c.API = APISTIXObjects
	}
	if c.APIVersion == "" {
		c.APIVersion = "2024-02-01-preview"
		if c.API == APILegacy {
			c.APIVersion = "2022-07-01"
		}
	}
	if c.AuthorityHost == "" {
		c.AuthorityHost = "https://login.microsoftonline.com/"
	}
	if c.APIURL == "" {
		c.APIURL = "https://api.ti.sentinel.azure.com"
	}
	if c.Scope == "" {
		c.Scope = "https://management.azure.com/.default"
	}
	if c.SourceSystem == "" {
		c.SourceSystem = "MISP"
	}
	if c.UserAgent == "" {
		c.UserAgent = "mispsentinel-listener"
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = time.Minute
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.RequestsPerMinute == 0 {
		c.RequestsPerMinute = 100
	}
	if c.QuotaMinute == 0 {
		c.QuotaMinute = time.Minute
	}
	return c
}
