package defender

import (
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mispsentinel/listener/sim/loopback"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/sim/window"
)

// Documented limits (spec §3, §8, §9).
const (
	MaxBatch       = 500
	MaxTop         = 10000
	DefaultCap     = 15000
	ImportPerMin   = 30
	DeletePerMin   = 30
	DeletePerHour  = 1500
	ListPerMin     = 100
	ListPerHour    = 1500
	RoleReadWrite  = "Ti.ReadWrite"
	RoleReadWriteA = "Ti.ReadWrite.All"
)

// CapBehaviour is what the simulator answers when an import would create an indicator
// beyond the cap; the real behaviour is undocumented (spec §9).
type CapBehaviour int

const (
	// CapItemFailure fails each new indicator beyond the cap in a 200 answer (isFailed with a
	// failureReason), storing the rest.
	CapItemFailure CapBehaviour = iota
	// CapWholeRequest answers the whole import 400 and stores nothing.
	CapWholeRequest
)

// CapReason is the failure text of an indicator refused because the tenant is full.
const CapReason = "Indicators limit reached: the tenant already holds the maximum of 15000 active indicators"

// Options configure a Server. The zero value works: its own Entra (sim/sentinel defaults),
// every app with Ti.ReadWrite.All, the documented cap and limits.
type Options struct {
	// Entra issues the tokens; nil starts one (closed with the Server).
	Entra *simsentinel.Server
	// Roles are the application roles per client id; a client not listed has
	// Ti.ReadWrite.All. An empty slice means no role (every call 403).
	Roles map[string][]string
	// RefuseXDRAudience answers 403 to tokens for https://api.security.microsoft.com (the
	// spec leaves open whether the indicator API accepts them).
	RefuseXDRAudience bool

	// Cap is the number of active indicators the tenant may hold; default DefaultCap.
	Cap          int
	CapBehaviour CapBehaviour
	// AllowInternalIPs accepts RFC 1918, loopback, link-local and ULA addresses.
	AllowInternalIPs bool
	// PageSize cuts list pages shorter than $top (0: only $top cuts); NoNextLink leaves
	// @odata.nextLink off cut pages.
	PageSize   int
	NoNextLink bool

	// Limits per (client, call type); zero fields take the documented values, negative
	// disables that limit. TimeScale shortens minutes and hours.
	ImportPerMinute, DeletePerMinute, DeletePerHour, ListPerMinute, ListPerHour int
	TimeScale                                                                   float64
	OmitRetryAfter                                                              bool

	Faults Faults
	Seed   uint64
	// Now is the clock (expiry, tokens, windows); default time.Now.
	Now func() time.Time
}

// Faults are injected failures of the indicator routes.
type Faults struct {
	// ServerErrorRate is the fraction of calls answered 500 before anything is applied.
	ServerErrorRate float64
	// LostResponseRate is the fraction of write calls applied and then answered 500.
	LostResponseRate float64
	// EmptyServerErrors answers injected 500s with an empty body.
	EmptyServerErrors bool
	Latency           time.Duration
}

// Stats count what the simulator saw.
type Stats struct {
	Imports, Deletes, BatchDeletes, Lists, Submits int
	Throttled, InjectedErrors, CapRefusals         int
	ItemFailures                                   int
	// MaxActive is the most active indicators held at any time.
	MaxActive int
}

// Indicator is one stored indicator.
type Indicator struct {
	ID                 string   `json:"id"`
	IndicatorValue     string   `json:"indicatorValue"`
	IndicatorType      string   `json:"indicatorType"`
	Action             string   `json:"action"`
	Title              string   `json:"title"`
	Description        string   `json:"description"`
	ExpirationTime     string   `json:"expirationTime,omitempty"`
	Severity           string   `json:"severity,omitempty"`
	GenerateAlert      bool     `json:"generateAlert"`
	Application        string   `json:"application,omitempty"`
	RecommendedActions string   `json:"recommendedActions,omitempty"`
	RbacGroupNames     []string `json:"rbacGroupNames"`
	ExternalID         string   `json:"externalId,omitempty"`
	CreatedBy          string   `json:"createdBy"`
	CreatedBySource    string   `json:"createdBySource"`
	CreationTime       string   `json:"creationTimeDateTimeUtc"`
	LastUpdateTime     string   `json:"lastUpdateTime"`

	expires time.Time
}

// Server is a running simulator; its methods are safe for concurrent use.
type Server struct {
	// URL is the API base URL (https://127.0.0.1:port).
	URL string
	// Entra is the simulated Entra issuing the tokens.
	Entra *simsentinel.Server

	ownEntra bool
	srv      *loopback.Server
	opts     Options
	now      func() time.Time

	mu      sync.Mutex
	rng     *rand.Rand
	faults  Faults
	cap     int
	capMode CapBehaviour
	nextID  int
	byID    map[string]*Indicator
	byKey   map[string]*Indicator
	windows window.Calls
	stats   Stats
}

// New starts a simulator on a TLS loopback listener.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Cap == 0 {
		opts.Cap = DefaultCap
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.TimeScale < 0 {
		return nil, fmt.Errorf("sim defender: time scale %v must be positive", opts.TimeScale)
	}
	for _, l := range []struct {
		v   *int
		def int
	}{{&opts.ImportPerMinute, ImportPerMin}, {&opts.DeletePerMinute, DeletePerMin}, {&opts.DeletePerHour, DeletePerHour}, {&opts.ListPerMinute, ListPerMin}, {&opts.ListPerHour, ListPerHour}} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	if opts.Seed == 0 {
		opts.Seed = 0xdefe
	}
	s := &Server{
		opts: opts, now: opts.Now, faults: opts.Faults, cap: opts.Cap, capMode: opts.CapBehaviour,
		rng:  rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		byID: make(map[string]*Indicator), byKey: make(map[string]*Indicator),
		windows: window.Calls{}, nextID: 1000,
	}
	if opts.Entra == nil {
		e, err := simsentinel.New(simsentinel.Options{Now: opts.Now})
		if err != nil {
			return nil, fmt.Errorf("sim defender: start entra: %w", err)
		}
		opts.Entra, s.ownEntra = e, true
	}
	s.Entra = opts.Entra

	srv, err := loopback.Start(http.HandlerFunc(s.route), loopback.Options{TLS: true})
	if err != nil {
		s.closeEntra()
		return nil, fmt.Errorf("sim defender: %w", err)
	}
	s.srv = srv
	s.URL = s.srv.URL
	return s, nil
}

func (s *Server) closeEntra() {
	if s.ownEntra {
		s.Entra.Close()
	}
}

// Close shuts the simulator (and an Entra it started) down.
func (s *Server) Close() {
	s.srv.Close()
	s.closeEntra()
}

// CertPool trusts the API's certificate and the Entra's.
func (s *Server) CertPool() *x509.CertPool {
	pool := s.Entra.CertPool()
	pool.AddCert(s.srv.Certificate())
	return pool
}

// HTTPClient returns a client trusting the API's certificate.
func (s *Server) HTTPClient() *http.Client { return s.srv.Client() }

// Minute returns the length of a rate-limit minute after time scaling.
func (s *Server) Minute() time.Duration {
	return time.Duration(float64(time.Minute) / s.opts.TimeScale)
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// SetCap changes the cap and what reaching it answers.
func (s *Server) SetCap(n int, mode CapBehaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cap, s.capMode = n, mode
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Indicators returns every active indicator, ordered by id.
func (s *Server) Indicators() []Indicator {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	return s.sortedLocked()
}

// Seed stores indicators as if created in the portal by createdBy (a UPN), outside any app:
// they count toward the cap like everything else.
func (s *Server) Seed(createdBy string, inds ...Indicator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ind := range inds {
		ind.CreatedBy, ind.CreatedBySource = createdBy, "Portal"
		s.storeLocked(ind, s.now())
	}
}

// Reset removes every indicator and zeroes the counters.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID, s.byKey, s.windows, s.stats = make(map[string]*Indicator), make(map[string]*Indicator), window.Calls{}, Stats{}
}

// keyOf is the upsert identity (spec §7.1): type, value (hashes and domains case-folded)
// and action.
func keyOf(typ, value, action string) string {
	if typ != "Url" {
		value = strings.ToLower(value)
	}
	return typ + "\x00" + value + "\x00" + action
}

// storeLocked inserts or updates ind; it returns the stored indicator and whether it is new.
func (s *Server) storeLocked(ind Indicator, now time.Time) (*Indicator, bool) {
	ts := now.UTC().Format("2006-01-02T15:04:05.0000000Z")
	k := keyOf(ind.IndicatorType, ind.IndicatorValue, ind.Action)
	if old, ok := s.byKey[k]; ok {
		ind.ID, ind.CreationTime, ind.Application, ind.CreatedBy, ind.CreatedBySource = old.ID, old.CreationTime, old.Application, old.CreatedBy, old.CreatedBySource
		ind.LastUpdateTime = ts
		*old = ind
		return old, false
	}
	s.nextID++
	ind.ID = fmt.Sprint(s.nextID)
	ind.CreationTime, ind.LastUpdateTime = ts, ts
	if ind.RbacGroupNames == nil {
		ind.RbacGroupNames = []string{}
	}
	stored := &ind
	s.byID[ind.ID], s.byKey[k] = stored, stored
	if n := len(s.byID); n > s.stats.MaxActive {
		s.stats.MaxActive = n
	}
	return stored, true
}

func (s *Server) deleteLocked(ind *Indicator) {
	delete(s.byID, ind.ID)
	delete(s.byKey, keyOf(ind.IndicatorType, ind.IndicatorValue, ind.Action))
}

// expire removes indicators whose expirationTime has passed (they free the cap).
func (s *Server) expire() {
	now := s.now()
	for _, ind := range s.byID {
		if !ind.expires.IsZero() && !now.Before(ind.expires) {
			s.deleteLocked(ind)
		}
	}
}

// CertificatePEM returns the API's TLS certificate in PEM form, for clients configured
// through a CA file (the listener's endpoints.ca_file).
func (s *Server) CertificatePEM() []byte { return s.srv.CertificatePEM() }

// SetRoles replaces the application roles per client id (see Options.Roles).
func (s *Server) SetRoles(roles map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Roles = roles
}
