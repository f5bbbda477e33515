package defender

import (
	"slices"
	"strings"
)

// Type is MDE's indicatorType.
type Type string

const (
	TypeFileSha1              Type = "FileSha1"
	TypeFileSha256            Type = "FileSha256"
	TypeFileMd5               Type = "FileMd5"
	TypeCertificateThumbprint Type = "CertificateThumbprint"
	TypeIPAddress             Type = "IpAddress"
	TypeDomainName            Type = "DomainName"
	TypeURL                   Type = "Url"
)

// Types are every indicator type MDE knows.
var Types = []Type{TypeFileSha1, TypeFileSha256, TypeFileMd5, TypeCertificateThumbprint, TypeIPAddress, TypeDomainName, TypeURL}

// IsFile reports whether t is a file hash type.
func (t Type) IsFile() bool { return t == TypeFileSha1 || t == TypeFileSha256 || t == TypeFileMd5 }

// IsNetwork reports whether t is an IP address, domain or URL.
func (t Type) IsNetwork() bool { return t == TypeIPAddress || t == TypeDomainName || t == TypeURL }

// Action is MDE's response action. The legacy Alert and AlertAndBlock are never sent.
type Action string

const (
	ActionAudit             Action = "Audit"
	ActionWarn              Action = "Warn"
	ActionBlock             Action = "Block"
	ActionBlockAndRemediate Action = "BlockAndRemediate"
	ActionAllowed           Action = "Allowed"
)

// Actions are the actions the listener may send.
var Actions = []Action{ActionAudit, ActionWarn, ActionBlock, ActionBlockAndRemediate, ActionAllowed}

// AllowedActions returns the actions MDE offers for indicators of type t (spec §6): files
// take all five, IPs, domains and URLs all but BlockAndRemediate, certificates only Allowed,
// Audit and BlockAndRemediate. Audit on certificates is not in the portal table but is how
// the listener alerts without acting, and the API takes it (Audit with generateAlert).
func AllowedActions(t Type) []Action {
	switch {
	case t.IsFile():
		return Actions
	case t.IsNetwork():
		return []Action{ActionAudit, ActionWarn, ActionBlock, ActionAllowed}
	case t == TypeCertificateThumbprint:
		return []Action{ActionAudit, ActionBlockAndRemediate, ActionAllowed}
	}
	return nil
}

// CanTake reports whether indicators of type t can take action a.
func CanTake(t Type, a Action) bool { return slices.Contains(AllowedActions(t), a) }

// Severity is MDE's alert severity.
type Severity string

const (
	SeverityInformational Severity = "Informational"
	SeverityLow           Severity = "Low"
	SeverityMedium        Severity = "Medium"
	SeverityHigh          Severity = "High"
)

// Severities are the valid severities.
var Severities = []Severity{SeverityInformational, SeverityLow, SeverityMedium, SeverityHigh}

// Indicator is one MDE indicator as submitted (request fields) and as listed (plus the
// response-only fields). Field names are case-sensitive on the wire.
type Indicator struct {
	// ID is MDE's numeric id (response only; never sent).
	ID                 string   `json:"id,omitempty"`
	IndicatorValue     string   `json:"indicatorValue"`
	IndicatorType      Type     `json:"indicatorType"`
	Action             Action   `json:"action"`
	Title              string   `json:"title"`
	Description        string   `json:"description"`
	ExpirationTime     string   `json:"expirationTime,omitempty"`
	Severity           Severity `json:"severity,omitempty"`
	GenerateAlert      bool     `json:"generateAlert"`
	Application        string   `json:"application,omitempty"`
	RecommendedActions string   `json:"recommendedActions,omitempty"`
	RbacGroupNames     []string `json:"rbacGroupNames,omitempty"`
	ExternalID         string   `json:"externalId,omitempty"`

	// Response-only fields.
	CreatedBy      string `json:"createdBy,omitempty"`
	CreationTime   string `json:"creationTimeDateTimeUtc,omitempty"`
	LastUpdateTime string `json:"lastUpdateTime,omitempty"`
}

// Key is MDE's identity of an indicator: an import with the same key updates it, a
// different action creates a second one (spec §7.1). Hashes and domains are compared
// case-insensitively.
type Key struct {
	Type   Type
	Value  string
	Action Action
}

// KeyOf returns the identity of ind.
func KeyOf(ind Indicator) Key {
	v := ind.IndicatorValue
	if ind.IndicatorType != TypeURL {
		v = strings.ToLower(v)
	}
	return Key{Type: ind.IndicatorType, Value: v, Action: ind.Action}
}

// request returns ind without its response-only fields, as sent in an import.
func (ind Indicator) request() Indicator {
	ind.ID, ind.CreatedBy, ind.CreationTime, ind.LastUpdateTime = "", "", "", ""
	return ind
}
