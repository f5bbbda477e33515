package sentinel

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mispsentinel/listener/sim/loopback"
	"github.com/mispsentinel/listener/sim/window"
)

// Defaults used when Options leave a field empty. They are ordinary GUIDs and secrets made up
// for the simulator.
const (
	DefaultTenantID     = "8f2b0a52-5d36-4c1e-9b6f-0c7a4e3d2f10"
	DefaultClientID     = "3c9e7b14-2a6f-4d58-8e01-b7f5c2d9a463"
	DefaultClientSecret = "sim-client-secret"
	DefaultWorkspaceID  = "5a1d3e7c-9b24-4f6a-8c0e-2d4f6a8b0c1e"

	// DefaultSubscriptionID, DefaultResourceGroup and DefaultWorkspaceName locate the
	// default workspace for the management (ARM) read-back routes.
	DefaultSubscriptionID = "6e0c2b7a-41d8-4f3e-9a5c-7b1d3f5e9c20"
	DefaultResourceGroup  = "rg-sentinel"
	DefaultWorkspaceName  = "ws-sentinel"

	DefaultManagedIdentityHeader   = "sim-identity-header"
	DefaultManagedIdentityClientID = "9d4f6b8a-0c2e-4a1b-8d3f-5e7a9c1b3d50"

	// ManagementScope is the token scope the upload APIs accept (public cloud).
	ManagementScope = "https://management.azure.com/.default"

	// STIXAPIVersion and LegacyAPIVersion are the only api-versions the upload routes accept.
	STIXAPIVersion   = "2024-02-01-preview"
	LegacyAPIVersion = "2022-07-01"

	// MaxObjectsPerRequest is the documented per-request object limit.
	MaxObjectsPerRequest = 100
	// DefaultQuotaPerMinute is the documented request quota per identity.
	DefaultQuotaPerMinute = 100

	maxBodyBytes = 16 << 20
)

// App is an Entra application registration the simulated tenant knows.
type App struct {
	ClientID string
	// Secret is the client secret; empty refuses secrets.
	Secret string
	// Certificate, when set, lets the app authenticate with a client assertion (a JWT signed
	// with the certificate's RSA key, as azidentity's certificate credential sends).
	Certificate *x509.Certificate
	// FederatedToken, when set, is accepted as a client assertion: the external token a
	// workload identity (Kubernetes service account) presents.
	FederatedToken string
}

// Workspace is a Log Analytics workspace the simulated upload API serves.
type Workspace struct {
	ID string
	// SubscriptionID, ResourceGroup and Name locate the workspace for the management (ARM)
	// read-back routes. Defaults: DefaultSubscriptionID, DefaultResourceGroup, and
	// DefaultWorkspaceName for the first workspace ("ws-" + the ID's first 8 characters for
	// the others).
	SubscriptionID string
	ResourceGroup  string
	Name           string
	// Contributors are the client ids holding the Microsoft Sentinel Contributor role on the
	// workspace. Nil means every app; an empty non-nil slice means none (every upload is 403).
	Contributors []string
}

// Options configure a Server. The zero value is a working simulator with one tenant, one app
// and one workspace (the Default* constants).
type Options struct {
	TenantID   string
	Apps       []App
	Workspaces []Workspace

	// Scopes lists the token scopes the token endpoint grants; uploads need ManagementScope
	// (or another scope listed here whose resource is https://management.*). Default:
	// ManagementScope, the US Government and China management scopes, and DefenderScopes
	// (so that one simulated tenant also serves sim/defender, as one Entra tenant serves
	// both APIs).
	Scopes []string

	// TokenLifetime is the lifetime of issued access tokens (reported as expires_in and
	// enforced by the upload routes). Default one hour.
	TokenLifetime time.Duration

	// QuotaPerMinute is the number of upload requests one identity may make in any sliding
	// minute before it is answered 429. Default DefaultQuotaPerMinute; negative disables it.
	QuotaPerMinute int
	// TimeScale shortens the quota's minute to time.Minute/TimeScale so that benchmarks can
	// run many "minutes" quickly. Default 1. The seconds in 429 answers stay real seconds.
	TimeScale float64
	// OmitRetryAfter leaves the Retry-After header off 429 answers so that only the seconds in
	// the body's message tell the client how long to wait.
	OmitRetryAfter bool

	// AllRejectedStatus is the status answered when every object of a request fails
	// validation (the real behaviour is undocumented). Default 400, with the same errors body
	// as a partial failure; set 200 to answer 200 with the errors body.
	AllRejectedStatus int

	// ManagedIdentityHeader is the secret the managed-identity endpoint (/msi/token, the App
	// Service protocol) expects in X-IDENTITY-HEADER; default DefaultManagedIdentityHeader.
	// Its tokens belong to ManagedIdentityClientID (default DefaultManagedIdentityClientID).
	ManagedIdentityHeader   string
	ManagedIdentityClientID string

	// VisibilityLag is how long an upload takes to show in the read-back routes (Microsoft's
	// query side is eventually consistent): a new object is invisible, and an updated one
	// shows its previous version, until the lag has passed. Change it with SetVisibilityLag.
	VisibilityLag time.Duration
	// QueryShowsDeleted reproduces the reported inconsistency of queryIndicators: an
	// indicator deleted through the management API still appears in queryIndicators (GET
	// answers 404). Change it with SetQueryShowsDeleted.
	QueryShowsDeleted bool

	// Faults are the initial fault settings; change them later with SetFaults.
	Faults Faults
	// Seed seeds the fault-injection random source (0 picks a fixed default).
	Seed uint64
	// Now is the simulator's clock. Default time.Now.
	Now func() time.Time
}

// Faults are injected failures of the upload routes.
type Faults struct {
	// ServerErrorRate is the fraction (0..1) of upload requests answered 500.
	ServerErrorRate float64
	// EmptyServerErrors answers injected 500s with an empty body instead of the APIM JSON body.
	EmptyServerErrors bool
	// DropRate is the fraction (0..1) of upload requests whose connection is closed without
	// an answer (before anything is stored).
	DropRate float64
	// Latency is added before every upload answer.
	Latency time.Duration
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL (https://127.0.0.1:port) of both the Entra and the upload routes:
	// use it as the authority host and as the upload API base URL.
	URL string

	srv  *loopback.Server
	opts Options
	now  func() time.Time

	mu         sync.Mutex
	rng        *rand.Rand
	faults     Faults
	stormUntil time.Time
	// throttleNext upload requests are answered 429 with Retry-After throttleAfter.
	throttleNext  int
	throttleAfter time.Duration
	apps          map[string]App
	workspaces    map[string]*workspaceState
	// arm maps "subscription/resourcegroup/name" (lower case) to the workspace's ID.
	arm        map[string]string
	reads      readState
	tokens     map[string]issuedToken
	tokenEpoch int // InvalidateTokens bumps it; tokens of older epochs are rejected
	windows    window.Calls
	// admitted holds the arrival time of every request the quota admitted (Admitted).
	admitted []time.Time
	stats    Stats
}

type workspaceState struct {
	id           string
	sub, rg      string
	name         string
	contributors map[string]bool // nil: everyone
	objects      map[string]*Record
}

type issuedToken struct {
	tenantID, clientID, scope string
	issued, expires           time.Time
	epoch                     int
}

// New starts a simulator on a TLS loopback listener.
func New(opts Options) (*Server, error) {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if len(opts.Apps) == 0 {
		opts.Apps = []App{{ClientID: DefaultClientID, Secret: DefaultClientSecret}}
	}
	if len(opts.Workspaces) == 0 {
		opts.Workspaces = []Workspace{{ID: DefaultWorkspaceID}}
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = append([]string{ManagementScope, "https://management.usgovcloudapi.net/.default", "https://management.chinacloudapi.cn/.default"}, DefenderScopes...)
	}
	if opts.ManagedIdentityHeader == "" {
		opts.ManagedIdentityHeader = DefaultManagedIdentityHeader
	}
	if opts.ManagedIdentityClientID == "" {
		opts.ManagedIdentityClientID = DefaultManagedIdentityClientID
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.QuotaPerMinute == 0 {
		opts.QuotaPerMinute = DefaultQuotaPerMinute
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.TimeScale < 0 {
		return nil, fmt.Errorf("sim sentinel: time scale %v must be positive", opts.TimeScale)
	}
	if opts.AllRejectedStatus == 0 {
		opts.AllRejectedStatus = http.StatusBadRequest
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Seed == 0 {
		opts.Seed = 0x5e171e1
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:       opts,
		now:        opts.Now,
		rng:        rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		faults:     opts.Faults,
		apps:       make(map[string]App),
		workspaces: make(map[string]*workspaceState),
		tokens:     make(map[string]issuedToken),
		windows:    window.Calls{},
		arm:        make(map[string]string),
	}
	s.reads.lag, s.reads.showDeleted = opts.VisibilityLag, opts.QueryShowsDeleted
	for _, a := range opts.Apps {
		if a.ClientID == "" {
			return nil, errors.New("sim sentinel: app without client id")
		}
		s.apps[a.ClientID] = a
	}
	for i, w := range opts.Workspaces {
		ws := &workspaceState{objects: make(map[string]*Record), id: strings.ToLower(w.ID), sub: w.SubscriptionID, rg: w.ResourceGroup, name: w.Name}
		if ws.sub == "" {
			ws.sub = DefaultSubscriptionID
		}
		if ws.rg == "" {
			ws.rg = DefaultResourceGroup
		}
		if ws.name == "" {
			ws.name = DefaultWorkspaceName
			if i > 0 {
				ws.name = "ws-" + ws.id[:min(8, len(ws.id))]
			}
		}
		armKey := strings.ToLower(ws.sub + "/" + ws.rg + "/" + ws.name)
		if _, dup := s.arm[armKey]; dup {
			return nil, fmt.Errorf("sim sentinel: two workspaces named %s", armKey)
		}
		s.arm[armKey] = ws.id
		if w.Contributors != nil {
			ws.contributors = make(map[string]bool)
			for _, c := range w.Contributors {
				ws.contributors[c] = true
			}
		}
		s.workspaces[strings.ToLower(w.ID)] = ws
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	mux.HandleFunc("GET /msi/token", s.handleManagedIdentityToken)
	mux.HandleFunc("POST /workspaces/{workspace}/threat-intelligence-stix-objects:upload", s.uploadHandler(apiSTIX))
	mux.HandleFunc("POST /{workspace}/threatintelligence:upload-indicators", s.uploadHandler(apiLegacyValue))
	mux.HandleFunc("POST /workspaces/{workspace}/threatintelligenceindicators:upload", s.uploadHandler(apiLegacyIndicators))
	s.routeReadBack(mux)

	srv, err := loopback.Start(mux, loopback.Options{TLS: true})
	if err != nil {
		return nil, fmt.Errorf("sim sentinel: %w", err)
	}
	s.srv = srv
	s.URL = s.srv.URL
	return s, nil
}

// Close shuts the simulator down and closes its connections.
func (s *Server) Close() { s.srv.Close() }

// CertPool returns a pool holding the simulator's self-signed certificate, for clients'
// TLS root CAs.
func (s *Server) CertPool() *x509.CertPool {
	return s.srv.CertPool()
}

// HTTPClient returns an HTTP client that trusts the simulator's certificate.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// TenantID returns the simulated tenant.
func (s *Server) TenantID() string { return s.opts.TenantID }

// Minute returns the length of the quota window after time scaling.
func (s *Server) Minute() time.Duration {
	return time.Duration(float64(time.Minute) / s.opts.TimeScale)
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	return nil
}

// ThrottleStorm answers every upload request 429 for the next d, as when another client of
// the same identity exhausts the quota. The 429s carry the time left in the storm.
func (s *Server) ThrottleStorm(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stormUntil = s.now().Add(d)
}

// ThrottleUploads answers the next n upload requests 429 with Retry-After: after (whole
// seconds, at least 1), as ThrottleStorm does but counted in requests rather than in time, so
// that a test sees its 429s however slowly the client gets to its first upload.
func (s *Server) ThrottleUploads(n int, after time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleNext, s.throttleAfter = n, after
}

// InvalidateTokens makes every token issued so far fail with 401, as when Entra revokes
// them; clients must fetch new ones.
func (s *Server) InvalidateTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenEpoch++
}

// SetContributor grants (or, with granted false, removes) the Microsoft Sentinel Contributor
// role of clientID on workspace.
func (s *Server) SetContributor(workspace, clientID string, granted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.workspaces[strings.ToLower(workspace)]
	if !ok {
		return
	}
	if ws.contributors == nil {
		ws.contributors = make(map[string]bool)
		for id := range s.apps {
			ws.contributors[id] = true
		}
	}
	ws.contributors[clientID] = granted
}

func (f Faults) validate() error {
	if f.ServerErrorRate < 0 || f.ServerErrorRate > 1 || f.DropRate < 0 || f.DropRate > 1 {
		return fmt.Errorf("sim sentinel: fault rates must be within 0..1 (server errors %v, drops %v)", f.ServerErrorRate, f.DropRate)
	}
	if f.Latency < 0 {
		return fmt.Errorf("sim sentinel: negative latency %s", f.Latency)
	}
	return nil
}
