package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mispsentinel/listener/defender"
)

// Values of Sink.Kind.
const (
	SinkSentinel = "sentinel"
	SinkDefender = "defender"
)

// Clouds of a defender sink (shared/spec/defender-api.md §2); Azure China has no Defender
// for Endpoint API.
const (
	DefenderCloudPublic       = "public"
	DefenderCloudPublicLegacy = "public-legacy"
	DefenderCloudGCC          = "gcc"
	DefenderCloudGCCHigh      = "gcc-high"
	DefenderCloudDoD          = "dod"
)

// Defender is the Defender for Endpoint part of a sink of kind defender.
type Defender struct {
	// Region selects a regional host of the public cloud (us, eu, uk, au, swa, ina, aea).
	Region string `yaml:"region" json:"region"`
	// Action is the response action of every indicator (Audit, Warn, Block,
	// BlockAndRemediate, Allowed); ActionsByType overrides it per MDE indicator type
	// (FileSha256, IpAddress, ...). A type that cannot take its action is refused.
	Action        string            `yaml:"action" json:"action"`
	ActionsByType map[string]string `yaml:"actions_by_type" json:"actions_by_type"`
	// Severity is Informational, Low, Medium or High; empty derives it from the MISP event's
	// threat level.
	Severity string `yaml:"severity" json:"severity"`
	// GenerateAlert raises an alert on a match (always on for Audit).
	GenerateAlert bool `yaml:"generate_alert" json:"generate_alert"`
	// DeviceGroups are the RBAC device group names the indicators apply to (empty: all).
	DeviceGroups []string `yaml:"device_groups" json:"device_groups"`
	// RecommendedActions is the alert's recommended actions (the MISP link is appended).
	RecommendedActions string `yaml:"recommended_actions" json:"recommended_actions"`
	// Application is shown in MDE's block notifications.
	Application string `yaml:"application" json:"application"`
	// Budget is the most indicators the listener keeps in the tenant, shared by every
	// defender sink of the tenant (they must agree); read-back lowers it further while other
	// tools hold more than 15,000 minus it.
	Budget int `yaml:"budget" json:"budget"`
	// SwapMargin is the score a waiting indicator must beat a held one by to take its slot.
	SwapMargin float64 `yaml:"swap_margin" json:"swap_margin"`
	// Score weighs the ranking (see docs/MAPPING.md).
	Score DefenderScore `yaml:"score" json:"score"`
	// MaxDefer is how long MDE calls may wait while a backlog is drained (ranking a large
	// initial load before importing).
	MaxDefer time.Duration `yaml:"max_defer" json:"max_defer"`
	// ReadBackInterval is the period of read-back (other tools' indicators, drift repair).
	ReadBackInterval time.Duration `yaml:"read_back_interval" json:"read_back_interval"`
}

// DefenderScore are the weights of the budget's score.
type DefenderScore struct {
	Confidence      float64            `yaml:"confidence" json:"confidence"`
	Decay           float64            `yaml:"decay" json:"decay"`
	Recency         float64            `yaml:"recency" json:"recency"`
	ThreatLevel     float64            `yaml:"threat_level" json:"threat_level"`
	RecencyHalfLife time.Duration      `yaml:"recency_half_life" json:"recency_half_life"`
	TypeWeights     map[string]float64 `yaml:"type_weights" json:"type_weights"`
}

// defenderRegions are the regional hosts of the public cloud (spec §2).
var defenderRegions = []string{"us", "eu", "uk", "au", "swa", "ina", "aea"}

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// defenderTypesOf returns the MDE indicator types a sink can produce: those of its
// attribute_types filter, or every type.
func defenderTypesOf(f Filters) []defender.Type {
	if len(f.AttributeTypes) == 0 {
		return defender.Types
	}
	var out []defender.Type
	for _, t := range f.AttributeTypes {
		if dt, ok := defender.MappedMISPTypes()[t]; ok && !slices.Contains(out, dt) {
			out = append(out, dt)
		}
		if t == "domain|ip" && !slices.Contains(out, defender.TypeIPAddress) {
			out = append(out, defender.TypeIPAddress)
		}
	}
	return out
}

func (c *Config) validateDefenderSink(i int, errs *Errors) {
	s := c.Sinks[i]
	p := sinkPath(s, i)
	if s.WorkspaceID != "" {
		errs.add(p("workspace_id"), "is a Sentinel setting; a defender sink writes to its tenant's Defender for Endpoint")
	}
	if _, fromTenants := s.FromTenants(); fromTenants {
		errs.add(p("kind"), "the tenants JSON describes Sentinel workspaces only")
	}
	if s.ReadBack != (ReadBack{}) {
		errs.add(p("read_back"), "is a Sentinel setting; a defender sink reads its tenant back itself (defender.read_back_interval)")
	}
	cloudOK := oneOf(s.Cloud, p("cloud"), errs, DefenderCloudPublic, DefenderCloudPublicLegacy, DefenderCloudGCC, DefenderCloudGCCHigh, DefenderCloudDoD)
	d := s.Defender
	if d.Region != "" {
		if oneOf(d.Region, p("defender.region"), errs, defenderRegions...) && s.Cloud != DefenderCloudPublic {
			errs.add(p("defender.region"), "exists only in cloud public")
		}
	}
	if cloudOK {
		validateEndpoints(s.Endpoints, p, true, true, errs)
	}
	checkNotEmpty(s.UserAgent, p("user_agent"), errs)
	if s.BatchSize < 1 || s.BatchSize > defender.MaxImportBatch {
		errs.add(p("batch_size"), "must be between 1 and %d (Defender's limit per import), got %d", defender.MaxImportBatch, s.BatchSize)
	}
	if s.RequestTimeout <= 0 {
		errs.add(p("request_timeout"), "must be more than 0s, got %s", s.RequestTimeout)
	}
	validateIdentity(s.Identity, p, errs)

	// Every MDE type the sink can produce must take its action (defender.MapOptions.Validate
	// words it; this maps its findings to key paths).
	actionOK := oneOf(d.Action, p("defender.action"), errs, names(defender.Actions)...)
	byType := map[defender.Type]defender.Action{}
	for t, a := range d.ActionsByType {
		path := p("defender.actions_by_type." + t)
		if !slices.Contains(defender.Types, defender.Type(t)) {
			errs.add(path, "unknown indicator type (want one of %s)", strings.Join(names(defender.Types), ", "))
			continue
		}
		if oneOf(a, path, errs, names(defender.Actions)...) && !defender.CanTake(defender.Type(t), defender.Action(a)) {
			errs.add(path, "%s indicators cannot take %s (allowed: %s)", t, a, strings.Join(names(defender.AllowedActions(defender.Type(t))), ", "))
		}
		byType[defender.Type(t)] = defender.Action(a)
	}
	if actionOK {
		var cannot []string
		for _, t := range defenderTypesOf(s.Filters) {
			if _, ok := byType[t]; !ok && !defender.CanTake(t, defender.Action(d.Action)) {
				cannot = append(cannot, string(t))
			}
		}
		if len(cannot) > 0 {
			errs.add(p("defender.action"), "%s indicators cannot take %s: set defender.actions_by_type for them, or narrow filters.attribute_types", strings.Join(cannot, ", "), d.Action)
		}
	}
	if d.Severity != "" {
		oneOf(d.Severity, p("defender.severity"), errs, names(defender.Severities)...)
	}
	if d.Budget < 1 || d.Budget > defender.TenantCap {
		errs.add(p("defender.budget"), "must be between 1 and %d (the tenant's cap), got %d", defender.TenantCap, d.Budget)
	}
	if d.SwapMargin < 0 || d.SwapMargin > 1 {
		errs.add(p("defender.swap_margin"), "must be between 0 and 1, got %v", d.SwapMargin)
	}
	sc := d.Score
	for _, w := range []struct {
		key string
		v   float64
	}{{"confidence", sc.Confidence}, {"decay", sc.Decay}, {"recency", sc.Recency}, {"threat_level", sc.ThreatLevel}} {
		if w.v < 0 {
			errs.add(p("defender.score."+w.key), "must not be negative, got %v", w.v)
		}
	}
	if sc.Confidence+sc.Decay+sc.Recency+sc.ThreatLevel <= 0 {
		errs.add(p("defender.score"), "needs at least one positive weight")
	}
	if sc.Recency > 0 && sc.RecencyHalfLife <= 0 {
		errs.add(p("defender.score.recency_half_life"), "must be positive when recency counts")
	}
	for t, w := range sc.TypeWeights {
		if !slices.Contains(defender.Types, defender.Type(t)) {
			errs.add(p("defender.score.type_weights."+t), "unknown indicator type (want one of %s)", strings.Join(names(defender.Types), ", "))
		} else if w < 0 {
			errs.add(p("defender.score.type_weights."+t), "must not be negative, got %v", w)
		}
	}
	if d.MaxDefer < 0 {
		errs.add(p("defender.max_defer"), "must not be negative, got %s", d.MaxDefer)
	}
	checkDuration(d.ReadBackInterval, p("defender.read_back_interval"), time.Minute, 7*24*time.Hour, errs)
	c.validateSinkFilters(s, p, errs)
}

// validateDefenderSinkSet checks that the defender sinks of one tenant agree on its budget.
func (c *Config) validateDefenderSinkSet(errs *Errors) {
	budgets := map[string]int{}
	for i, s := range c.Sinks {
		if s.Kind != SinkDefender {
			continue
		}
		tenant := s.DefenderTenant()
		if j, ok := budgets[tenant]; ok && c.Sinks[j].Defender.Budget != s.Defender.Budget {
			errs.add(sinkPath(s, i)("defender.budget"), "is %d but sinks[%d] feeds the same tenant with %d; the budget is the tenant's and must agree",
				s.Defender.Budget, j, c.Sinks[j].Defender.Budget)
		} else if !ok {
			budgets[tenant] = i
		}
	}
}

// DefenderTenant names the tenant whose cap a defender sink shares: sinks with equal names
// share one budget.
func (s Sink) DefenderTenant() string {
	return fmt.Sprintf("%s|%s", strings.ToLower(strings.TrimSuffix(s.Endpoints.APIHost, "/")), strings.ToLower(s.Identity.TenantID))
}
