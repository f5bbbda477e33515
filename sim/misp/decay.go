package misp

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mispmodel "github.com/mispsentinel/listener/misp"
)

// Decaying models, as MISP scores attributes with them (app/Model/DecayingModel.php and
// app/Model/DecayingModelsFormulas/). With includeDecayScore, events/restSearch attaches to
// every attribute one decay_score entry per enabled model that covers its type: the base score
// from the attribute's and event's taxonomy tags (or the model's default), decayed from the
// last true-positive sighting, else last_seen, else the attribute timestamp.

// sighting is one sighting of an attribute: type 0 true positive, 1 false positive,
// 2 expiration.
type sighting struct {
	typ int
	at  int64
}

// Sighting types.
const (
	SightingTruePositive  = 0
	SightingFalsePositive = 1
)

// AddDecayingModel stores a decaying model and returns its id (model.ID when set). Only
// enabled models score attributes, like MISP's attachScoresToAttribute.
func (m *MISP) AddDecayingModel(model mispmodel.DecayingModel) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if model.ID == "" {
		model.ID = strconv.Itoa(len(m.models) + 1)
	}
	if model.Formula == "" {
		model.Formula = mispmodel.FormulaPolynomial
	}
	m.models = slices.DeleteFunc(m.models, func(o mispmodel.DecayingModel) bool { return o.ID == model.ID })
	m.models = append(m.models, model)
	slices.SortFunc(m.models, func(a, b mispmodel.DecayingModel) int {
		ai, _ := strconv.Atoi(a.ID)
		bi, _ := strconv.Atoi(b.ID)
		return ai - bi
	})
	return model.ID
}

// SetTaxonomyValue sets the numerical_value MISP's taxonomy gives a tag (for example
// admiralty-scale:source-reliability="a" → 100), which base scores weigh.
func (m *MISP) SetTaxonomyValue(tagName string, value float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tagValues == nil {
		m.tagValues = map[string]float64{}
	}
	m.tagValues[tagName] = value
}

// AddSighting records a sighting of an attribute at the given time. Like MISP, it changes
// neither the attribute's nor the event's timestamp: only a full search sees the new score.
func (m *MISP) AddSighting(eventUUID, attrUUID string, typ int, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, a, err := m.lookupAttribute(eventUUID, attrUUID)
	if err != nil {
		return err
	}
	a.sightings = append(slices.Clip(a.sightings), sighting{typ: typ, at: at.Unix()})
	return nil
}

// AddAttributeTag attaches a tag to an attribute (an edit: timestamps move).
func (m *MISP) AddAttributeTag(eventUUID, attrUUID, name string) error {
	return m.editAttribute(eventUUID, attrUUID, func(a *attribute) {
		if !slices.ContainsFunc(a.tags, func(t *tag) bool { return t.name == name }) {
			a.tags = append(slices.Clip(a.tags), newTag(name))
		}
	})
}

// decayScorer computes decay_score lists at one instant with a snapshot of the models.
type decayScorer struct {
	models    []mispmodel.DecayingModel
	tagValues map[string]float64
	now       int64
}

// decayScorer returns a scorer for the current clock. m.mu must be held.
func (m *MISP) decayScorer() *decayScorer {
	var enabled []mispmodel.DecayingModel
	for _, md := range m.models {
		if md.Enabled {
			enabled = append(enabled, md)
		}
	}
	return &decayScorer{models: enabled, tagValues: m.tagValues, now: m.now().Unix()}
}

type wireDecayScore struct {
	Score     float64        `json:"score"`
	BaseScore float64        `json:"base_score"`
	Decayed   bool           `json:"decayed"`
	Model     wireModelBrief `json:"DecayingModel"`
}

type wireModelBrief struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// scores returns the attribute's decay_score JSON, or nil when no enabled model covers its
// type (MISP then writes no decay_score key).
func (s *decayScorer) scores(ev *event, a *attribute) json.RawMessage {
	var out []wireDecayScore
	for i := range s.models {
		md := &s.models[i]
		if !slices.Contains(md.AttributeTypes, a.typ) {
			continue
		}
		base := s.baseScore(md, ev.tags, a.tags)
		score := s.score(md, a, base)
		out = append(out, wireDecayScore{
			Score: score, BaseScore: base, Decayed: md.Threshold > score,
			Model: wireModelBrief{ID: md.ID, Name: md.Name},
		})
	}
	if out == nil {
		return nil
	}
	b, _ := marshalPHP(out)
	return b
}

// score is DecayingModelBase::computeCurrentScore with the model's formula.
func (s *decayScorer) score(md *mispmodel.DecayingModel, a *attribute, base float64) float64 {
	if md.Formula == "Sightings" {
		// Sightings.php with its default settings: minimum 1 sighting, no offsets.
		if len(a.sightings) == 0 {
			return base
		}
		tp := 0
		for _, sg := range a.sightings {
			if sg.typ == SightingTruePositive {
				tp++
			}
		}
		return float64(tp) / float64(len(a.sightings)) * base
	}
	ref := int64(-1)
	for _, sg := range a.sightings {
		if sg.typ == SightingTruePositive && sg.at > ref {
			ref = sg.at
		}
	}
	lastSeen, hasLastSeen := parseSeen(a.lastSeen)
	if ref < 0 {
		ref = a.timestamp
		if hasLastSeen {
			ref = lastSeen
		}
	}
	if a.timestamp > ref { // modified after the last sighting
		ref = a.timestamp
		if hasLastSeen {
			ref = lastSeen
		}
	}
	return md.Score(base, time.Duration(s.now-ref)*time.Second)
}

// parseSeen reads a stored last_seen (ISO-8601) as Unix seconds, as MISP's
// (new DateTime($last_seen))->format('U') does.
func parseSeen(v *string) (int64, bool) {
	if v == nil || *v == "" {
		return 0, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, *v); err == nil {
			return t.Unix(), true
		}
	}
	return 0, false
}

var (
	tripleTag = regexp.MustCompile(`(?i)^[^:="]+:[^:="]+="[^:="]+"$`)
	doubleTag = regexp.MustCompile(`(?i)^[^:="]+:[^:="]+$`)
)

// tagBase is DecayingModelBase::__extractTagBasename's "base": namespace:predicate for a
// triple tag, the namespace for a double one, else the name.
func tagBase(name string) string {
	switch {
	case tripleTag.MatchString(name):
		ns, rest, _ := strings.Cut(name, ":")
		pred, _, _ := strings.Cut(rest, "=")
		return ns + ":" + pred
	case doubleTag.MatchString(name):
		ns, _, _ := strings.Cut(name, ":")
		return ns
	}
	return name
}

// baseScore is DecayingModelBase::computeBasescore: event tags overridden by attribute tags
// of the same base, each scored tag weighted by its taxonomy's share of the configured
// weights; the model's default base score when no tag is scored.
func (s *decayScorer) baseScore(md *mispmodel.DecayingModel, eventTags, attrTags []*tag) float64 {
	tags := make([]*tag, 0, len(eventTags)+len(attrTags))
	positions := map[string][]int{}
	for _, t := range eventTags {
		positions[tagBase(t.name)] = append(positions[tagBase(t.name)], len(tags))
		tags = append(tags, t)
	}
	removed := map[int]bool{}
	for _, t := range attrTags {
		idx := positions[tagBase(t.name)]
		if len(idx) == 0 {
			tags = append(tags, t)
			continue
		}
		for i, at := range idx {
			if i == 0 {
				tags[at] = t
			} else {
				removed[at] = true
			}
		}
	}
	var kept []*tag
	for i, t := range tags {
		if !removed[i] {
			kept = append(kept, t)
		}
	}
	if len(md.BaseScoreConfig) == 0 {
		return md.DefaultBaseScore
	}
	total := 0.0
	for _, t := range kept {
		if w, ok := md.BaseScoreConfig[tagBase(t.name)]; ok {
			if _, numeric := s.tagValue(t); numeric {
				total += w
			}
		}
	}
	base, matched := 0.0, false
	for _, t := range kept {
		w, ok := md.BaseScoreConfig[tagBase(t.name)]
		v, numeric := s.tagValue(t)
		if ok && numeric && total > 0 {
			matched = true
			base += w / total * v
		}
	}
	if !matched {
		return md.DefaultBaseScore
	}
	return base
}

// tagValue is the tag's taxonomy numerical_value: set with SetTaxonomyValue, or carried in the
// tag's JSON.
func (s *decayScorer) tagValue(t *tag) (float64, bool) {
	if v, ok := s.tagValues[t.name]; ok {
		return v, true
	}
	var w struct {
		NumericalValue json.RawMessage `json:"numerical_value"`
	}
	if json.Unmarshal(t.raw, &w) != nil || len(w.NumericalValue) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.Trim(string(w.NumericalValue), `"`), 64)
	return v, err == nil
}

// ---- decayingModel API ----

type wireDecayingModel struct {
	ID             string         `json:"id"`
	UUID           string         `json:"uuid"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	Parameters     wireParameters `json:"parameters"`
	AttributeTypes []string       `json:"attribute_types"`
	OrgID          string         `json:"org_id"`
	Enabled        bool           `json:"enabled"`
	AllOrgs        bool           `json:"all_orgs"`
	Formula        string         `json:"formula"`
	Version        string         `json:"version"`
	Default        bool           `json:"default"`
	IsEditable     bool           `json:"isEditable"`
}

type wireParameters struct {
	Lifetime         float64            `json:"lifetime"`
	DecaySpeed       float64            `json:"decay_speed"`
	Threshold        float64            `json:"threshold"`
	DefaultBaseScore float64            `json:"default_base_score"`
	BaseScoreConfig  map[string]float64 `json:"base_score_config"`
}

func toWireModel(md mispmodel.DecayingModel) map[string]wireDecayingModel {
	types := md.AttributeTypes
	if types == nil {
		types = []string{}
	}
	cfg := md.BaseScoreConfig
	if cfg == nil {
		cfg = map[string]float64{}
	}
	return map[string]wireDecayingModel{"DecayingModel": {
		ID: md.ID, UUID: md.UUID, Name: md.Name, Formula: md.Formula, Enabled: md.Enabled,
		AllOrgs: true, OrgID: "1", Version: "1", AttributeTypes: types,
		Parameters: wireParameters{
			Lifetime: md.LifetimeDays, DecaySpeed: md.DecaySpeed, Threshold: md.Threshold,
			DefaultBaseScore: md.DefaultBaseScore, BaseScoreConfig: cfg,
		},
	}}
}

// decayingModelView serves GET /decayingModel/view/{id} like DecayingModelController::view.
func (m *MISP) decayingModelView(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	m.mu.Lock()
	i := slices.IndexFunc(m.models, func(md mispmodel.DecayingModel) bool { return md.ID == id })
	var md mispmodel.DecayingModel
	if i >= 0 {
		md = m.models[i]
	}
	m.mu.Unlock()
	if i < 0 {
		writeError(w, r, http.StatusNotFound, "No Decaying Model with the provided ID exists")
		return
	}
	body, err := marshalPHP(toWireModel(md))
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// decayingModelIndex serves GET /decayingModel/index: every model, newest id first (MISP's
// paginated default order), all on one page.
func (m *MISP) decayingModelIndex(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	list := make([]map[string]wireDecayingModel, 0, len(m.models))
	for i := len(m.models) - 1; i >= 0; i-- {
		list = append(list, toWireModel(m.models[i]))
	}
	m.mu.Unlock()
	body, err := marshalPHP(list)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
