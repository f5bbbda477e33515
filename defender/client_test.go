package defender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/sentinel"
	simdefender "github.com/mispsentinel/listener/sim/defender"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startSim(t *testing.T, opts simdefender.Options) *simdefender.Server {
	t.Helper()
	s, err := simdefender.New(opts)
	if err != nil {
		t.Fatalf("sim: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func testConfig(s *simdefender.Server, scope string) Config {
	if scope == "" {
		scope = legacyScope
	}
	return Config{
		Endpoints: Endpoints{AuthorityHost: s.Entra.URL, APIURL: s.URL, Scope: scope},
		Credential: sentinel.Credential{Kind: sentinel.CredentialClientSecret, TenantID: s.Entra.TenantID(),
			ClientID: simsentinel.DefaultClientID, ClientSecret: simsentinel.DefaultClientSecret, DisableInstanceDiscovery: true},
		Application: "MISP", UserAgent: "listener-test", RequestTimeout: 2 * time.Minute, BatchSize: MaxImportBatch,
		TLSRootCAs: s.CertPool(),
	}
}

func newClient(t *testing.T, s *simdefender.Server, scope string) *Client {
	t.Helper()
	c, err := New(testConfig(s, scope), NewLimiters(RateLimits{ImportPerMinute: 6000, DeletePerMinute: 6000, ListPerMinute: 6000, Minute: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ind(typ Type, value string, action Action) Indicator {
	return Indicator{IndicatorValue: value, IndicatorType: typ, Action: action, Title: "t " + value, Description: "d",
		GenerateAlert: true, Severity: SeverityMedium, ExpirationTime: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}
}

func TestImportUpsertsByTypeValueAndAction(t *testing.T) {
	s := startSim(t, simdefender.Options{})
	c := newClient(t, s, "")
	ctx := context.Background()
	batch := []Indicator{ind(TypeIPAddress, "198.51.100.7", ActionAudit), ind(TypeDomainName, "evil.example", ActionBlock),
		ind(TypeFileSha256, "aa0f1c3b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8", ActionBlockAndRemediate)}
	first, err := c.Import(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range first {
		if r.Failed || r.ID == "" {
			t.Fatalf("item %d: %+v", i, r)
		}
	}
	again, err := c.Import(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		if again[i].ID != first[i].ID {
			t.Errorf("re-import of %s gave id %s, want the same %s", batch[i].IndicatorValue, again[i].ID, first[i].ID)
		}
	}
	other := batch[1]
	other.Action = ActionWarn
	res, err := c.Import(ctx, []Indicator{other})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].ID == first[1].ID {
		t.Errorf("another action must create a second indicator, got the same id %s", res[0].ID)
	}
	listed, err := c.List(ctx, OwnFilter(simsentinel.DefaultClientID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 {
		t.Errorf("listed %d indicators, want 4", len(listed))
	}
}

func TestImportReportsEachRefusedIndicatorWithDefendersReason(t *testing.T) {
	s := startSim(t, simdefender.Options{})
	c := newClient(t, s, "")
	noAlert := ind(TypeURL, "http://bad.example/x", ActionAudit)
	noAlert.GenerateAlert = false
	batch := []Indicator{
		ind(TypeIPAddress, "10.1.2.3", ActionBlock),
		ind(TypeIPAddress, "203.0.113.0/24", ActionBlock),
		noAlert,
		ind(TypeDomainName, "fine.example", ActionBlock),
		ind(TypeIPAddress, "198.51.100.9", ActionBlockAndRemediate),
	}
	res, err := c.Import(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, true, false, true} {
		if res[i].Failed != want {
			t.Errorf("item %d (%s): failed=%v want %v (%s)", i, batch[i].IndicatorValue, res[i].Failed, want, res[i].Reason)
		}
		if want && (res[i].Reason == "" || res[i].CapReached) {
			t.Errorf("item %d: reason %q cap %v", i, res[i].Reason, res[i].CapReached)
		}
	}
}

func TestCapReachedBothBehaviours(t *testing.T) {
	for _, mode := range []simdefender.CapBehaviour{simdefender.CapItemFailure, simdefender.CapWholeRequest} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			s := startSim(t, simdefender.Options{Cap: 2, CapBehaviour: mode})
			c := newClient(t, s, "")
			ctx := context.Background()
			if _, err := c.Import(ctx, []Indicator{ind(TypeDomainName, "a.example", ActionBlock), ind(TypeDomainName, "b.example", ActionBlock)}); err != nil {
				t.Fatal(err)
			}
			res, err := c.Import(ctx, []Indicator{ind(TypeDomainName, "a.example", ActionBlock), ind(TypeDomainName, "c.example", ActionBlock)})
			switch mode {
			case simdefender.CapItemFailure:
				if err != nil {
					t.Fatal(err)
				}
				if res[0].Failed || !res[1].Failed || !res[1].CapReached {
					t.Errorf("want the update stored and the new one refused for the cap, got %+v", res)
				}
			case simdefender.CapWholeRequest:
				var ce *CapError
				if !errors.As(err, &ce) {
					t.Fatalf("want *CapError, got %v", err)
				}
			}
		})
	}
}

func TestThrottlingNamesTheWait(t *testing.T) {
	s := startSim(t, simdefender.Options{ImportPerMinute: 1})
	c := newClient(t, s, "")
	ctx := context.Background()
	if _, err := c.Import(ctx, []Indicator{ind(TypeDomainName, "a.example", ActionBlock)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Import(ctx, []Indicator{ind(TypeDomainName, "b.example", ActionBlock)})
	var re *pusher.RetryError
	if !errors.As(err, &re) || re.Status != http.StatusTooManyRequests || re.After < 30*time.Second {
		t.Fatalf("want a 429 RetryableError with a wait of about a minute, got %v", err)
	}
}

func TestLostResponseIsRetryableAndTheRetryIdempotent(t *testing.T) {
	s := startSim(t, simdefender.Options{Faults: simdefender.Faults{LostResponseRate: 1}})
	c := newClient(t, s, "")
	ctx := context.Background()
	batch := []Indicator{ind(TypeDomainName, "a.example", ActionBlock)}
	_, err := c.Import(ctx, batch)
	var re *pusher.RetryError
	if !errors.As(err, &re) || re.Status != http.StatusInternalServerError {
		t.Fatalf("want a retryable 500, got %v", err)
	}
	s.SetFaults(simdefender.Faults{})
	if _, err := c.Import(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Indicators()); n != 1 {
		t.Errorf("after a lost answer and a retry the tenant holds %d indicators, want 1", n)
	}
}

func TestAuthOutcomes(t *testing.T) {
	t.Run("revoked token is refreshed once", func(t *testing.T) {
		s := startSim(t, simdefender.Options{})
		c := newClient(t, s, "")
		if err := c.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Entra.InvalidateTokens()
		if err := c.Check(context.Background()); err != nil {
			t.Fatalf("after token revocation: %v", err)
		}
	})
	t.Run("missing permission is fatal", func(t *testing.T) {
		s := startSim(t, simdefender.Options{Roles: map[string][]string{simsentinel.DefaultClientID: {}}})
		err := newClient(t, s, "").Check(context.Background())
		var fe *pusher.FatalError
		if !errors.As(err, &fe) || fe.Cause != CausePermission {
			t.Fatalf("want a permission FatalError, got %v", err)
		}
	})
	t.Run("XDR audience refused", func(t *testing.T) {
		s := startSim(t, simdefender.Options{RefuseXDRAudience: true})
		err := newClient(t, s, "https://api.security.microsoft.com/.default").Check(context.Background())
		var fe *pusher.FatalError
		if !errors.As(err, &fe) || fe.Status != http.StatusForbidden {
			t.Fatalf("want a 403 FatalError, got %v", err)
		}
	})
	t.Run("management token is refused", func(t *testing.T) {
		s := startSim(t, simdefender.Options{})
		err := newClient(t, s, simsentinel.ManagementScope).Check(context.Background())
		var fe *pusher.FatalError
		if !errors.As(err, &fe) || fe.Cause != CauseCredential {
			t.Fatalf("want a credential FatalError, got %v", err)
		}
	})
	t.Run("wrong secret is fatal", func(t *testing.T) {
		s := startSim(t, simdefender.Options{})
		cfg := testConfig(s, "")
		cfg.Credential.ClientSecret = "wrong"
		c, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var fe *pusher.FatalError
		if err := c.Check(context.Background()); !errors.As(err, &fe) || fe.Cause != CauseCredential {
			t.Fatalf("want a credential FatalError, got %v", err)
		}
	})
}

func TestBatchDeleteSettlesUnknownIdsAsGone(t *testing.T) {
	s := startSim(t, simdefender.Options{})
	c := newClient(t, s, "")
	ctx := context.Background()
	res, err := c.Import(ctx, []Indicator{ind(TypeDomainName, "a.example", ActionBlock), ind(TypeDomainName, "b.example", ActionBlock)})
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.BatchDelete(ctx, []string{res[0].ID, "999999", res[1].ID, "not-a-number"})
	if err != nil {
		t.Fatal(err)
	}
	if del[0].Failed || del[0].Gone || !del[1].Gone || del[2].Failed || !del[3].Failed {
		t.Errorf("unexpected delete results %+v", del)
	}
	if n := len(s.Indicators()); n != 0 {
		t.Errorf("%d indicators left, want 0", n)
	}
}

func TestListPages(t *testing.T) {
	for _, noNext := range []bool{false, true} {
		t.Run(fmt.Sprint("nextLink off ", noNext), func(t *testing.T) {
			s := startSim(t, simdefender.Options{PageSize: 7, NoNextLink: noNext})
			c := newClient(t, s, "")
			ctx := context.Background()
			var batch []Indicator
			for i := range 30 {
				batch = append(batch, ind(TypeDomainName, fmt.Sprintf("d%d.example", i), ActionBlock))
			}
			if _, err := c.Import(ctx, batch); err != nil {
				t.Fatal(err)
			}
			got, err := c.List(ctx, "indicatorType eq 'DomainName' and action eq 'Block'", 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 30 {
				t.Errorf("listed %d, want 30", len(got))
			}
		})
	}
}
