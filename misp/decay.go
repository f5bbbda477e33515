package misp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DecayingModel is a MISP decaying model as GET /decayingModel/view/{id} returns it: the
// formula and the parameters that turn an attribute's base score and age into its score.
type DecayingModel struct {
	ID      string
	UUID    string
	Name    string
	Enabled bool
	// Formula is the scoring class: FormulaPolynomial (the default), "Sightings" (the
	// true/false-positive ratio, which does not fall with time) or another MISP module.
	Formula string
	// LifetimeDays is the age at which a polynomial score reaches 0.
	LifetimeDays float64
	// DecaySpeed shapes the polynomial curve (1 is linear).
	DecaySpeed float64
	// Threshold is the score below which MISP marks the attribute decayed.
	Threshold float64
	// DefaultBaseScore is the base score of an attribute without any scored taxonomy tag.
	DefaultBaseScore float64
	// BaseScoreConfig weights taxonomies (by namespace, or namespace:predicate for
	// triple tags) in the base score.
	BaseScoreConfig map[string]float64
	// AttributeTypes are the attribute types the model scores.
	AttributeTypes []string
}

// FormulaPolynomial is the formula of MISP's default decaying models
// (app/Model/DecayingModelsFormulas/Polynomial.php).
const FormulaPolynomial = "Polynomial"

// Decays reports whether the model's score falls with time by the polynomial formula with
// usable parameters, so that the moment it crosses a score can be computed.
func (m *DecayingModel) Decays() bool {
	return (m.Formula == "" || m.Formula == FormulaPolynomial) && m.LifetimeDays > 0 && m.DecaySpeed > 0
}

// Score is MISP's polynomial score after elapsed:
// base × (1 − (elapsed / lifetime)^(1 / decay_speed)), never below 0, and 0 for a negative
// elapsed (MISP's quirk for a reference time in the future).
func (m *DecayingModel) Score(base float64, elapsed time.Duration) float64 {
	if elapsed < 0 || !m.Decays() {
		return 0
	}
	lifetime := m.LifetimeDays * 24 * 3600
	s := base * (1 - math.Pow(elapsed.Seconds()/lifetime, 1/m.DecaySpeed))
	return max(s, 0)
}

// ElapsedAt is the inverse of Score: how long after its reference time an attribute of the
// given base score scores exactly score, lifetime × (1 − score / base)^decay_speed. ok is false
// when the model does not decay by the polynomial formula, or score is outside (0, base].
func (m *DecayingModel) ElapsedAt(base, score float64) (elapsed time.Duration, ok bool) {
	if !m.Decays() || base <= 0 || score <= 0 || score > base {
		return 0, false
	}
	lifetime := m.LifetimeDays * 24 * 3600
	secs := lifetime * math.Pow(1-score/base, m.DecaySpeed)
	return time.Duration(secs * float64(time.Second)), true
}

// DecayingModel fetches one decaying model by id with GET /decayingModel/view/{id}. A model
// that does not exist, or that the key's organisation may not see, is ErrDecayingModelNotFound.
func (c *Client) DecayingModel(ctx context.Context, id string) (*DecayingModel, error) {
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return nil, fmt.Errorf("view decaying model: id %q is not a number", id)
	}
	data, _, err := c.do(ctx, http.MethodGet, "/decayingModel/view/"+url.PathEscape(id), nil)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && (se.StatusCode == http.StatusNotFound || isNotFoundMessage(se)) {
			return nil, fmt.Errorf("view decaying model %s: %w (%s)", id, ErrDecayingModelNotFound, se.Message)
		}
		return nil, fmt.Errorf("view decaying model %s: %w", id, err)
	}
	m, err := DecodeDecayingModel(data)
	if err != nil {
		return nil, fmt.Errorf("view decaying model %s: %w", id, err)
	}
	return m, nil
}

// ErrDecayingModelNotFound is returned for a decaying model MISP does not show.
var ErrDecayingModelNotFound = errors.New("decaying model not found")

// DecodeDecayingModel decodes {"DecayingModel": {...}} (or the bare object) as
// decayingModel/view returns it. Numbers may come as JSON numbers or numeric strings; the
// parameters as an object or as the JSON text MISP stores them in.
func DecodeDecayingModel(data []byte) (*DecayingModel, error) {
	var outer struct {
		DecayingModel *wireDecayingModel `json:"DecayingModel"`
	}
	if err := json.Unmarshal(data, &outer); err != nil {
		return nil, fmt.Errorf("decode decaying model: %w", err)
	}
	w := outer.DecayingModel
	if w == nil {
		w = &wireDecayingModel{}
		if err := json.Unmarshal(data, w); err != nil {
			return nil, fmt.Errorf("decode decaying model: %w", err)
		}
	}
	if w.ID == "" {
		return nil, errors.New("decode decaying model: no DecayingModel.id")
	}
	params := w.Parameters
	if len(params) > 0 && params[0] == '"' {
		var s string
		if err := json.Unmarshal(params, &s); err != nil {
			return nil, fmt.Errorf("decode decaying model %s: parameters: %w", w.ID, err)
		}
		params = json.RawMessage(s)
	}
	var p wireModelParameters
	if len(params) > 0 && string(params) != "null" && string(params) != "[]" {
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("decode decaying model %s: parameters: %w", w.ID, err)
		}
	}
	m := &DecayingModel{
		ID: string(w.ID), UUID: w.UUID, Name: w.Name, Enabled: bool(w.Enabled), Formula: w.Formula,
		LifetimeDays: float64(p.Lifetime), DecaySpeed: float64(p.DecaySpeed), Threshold: float64(p.Threshold),
		DefaultBaseScore: float64(p.DefaultBaseScore), AttributeTypes: w.AttributeTypes,
	}
	if len(p.BaseScoreConfig) > 0 {
		m.BaseScoreConfig = make(map[string]float64, len(p.BaseScoreConfig))
		for k, v := range p.BaseScoreConfig {
			m.BaseScoreConfig[k] = float64(v)
		}
	}
	return m, nil
}

type wireDecayingModel struct {
	ID             flexText        `json:"id"`
	UUID           string          `json:"uuid"`
	Name           string          `json:"name"`
	Enabled        flexBool        `json:"enabled"`
	Formula        string          `json:"formula"`
	Parameters     json.RawMessage `json:"parameters"`
	AttributeTypes []string        `json:"attribute_types"`
}

type wireModelParameters struct {
	Lifetime         flexNumber            `json:"lifetime"`
	DecaySpeed       flexNumber            `json:"decay_speed"`
	Threshold        flexNumber            `json:"threshold"`
	DefaultBaseScore flexNumber            `json:"default_base_score"`
	BaseScoreConfig  map[string]flexNumber `json:"base_score_config"`
}

// flexNumber is a JSON number or numeric string ("" and null are 0).
type flexNumber float64

func (f *flexNumber) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("cannot use %s as a number", quoteShort(string(b)))
	}
	*f = flexNumber(v)
	return nil
}

// flexText is a JSON string or number, kept as text.
type flexText string

func (t *flexText) UnmarshalJSON(b []byte) error {
	*t = flexText(strings.Trim(string(b), `"`))
	if *t == "null" {
		*t = ""
	}
	return nil
}

// flexBool is true, false, 1, 0, "1" or "0".
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "true", "1":
		*v = true
	default:
		*v = false
	}
	return nil
}
