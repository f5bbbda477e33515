package stix

import (
	"fmt"
	"math"
	"time"

	"github.com/mispsentinel/listener/misp"
)

// DecayAnyModel selects, for Decay.Model, the highest score over every model that scored the
// attribute.
const DecayAnyModel = "any"

// Decay filters and ages indicators by MISP's decaying-model scores: the decay_score entries an
// events search with includeDecayScore attaches to each attribute. The zero value turns decay
// off.
//
// An attribute without an entry of the chosen model (its type is not one the model scores) is
// not judged by decay. One whose score is below MinScore, or which the model marks decayed, is
// skipped with SkipDecayed. Where the chosen model's parameters are known, the indicator's
// valid_until is the moment its score falls below max(MinScore, the model's threshold) when
// that is earlier than the configured lifetime, so Sentinel stops matching it on time.
type Decay struct {
	// Enabled turns decay on.
	Enabled bool
	// Model is the model id or name whose score counts, or DecayAnyModel.
	Model string
	// MinScore is the lowest score exported (0-100).
	MinScore float64
	// ConfidenceFromScore makes the indicator's confidence the rounded score instead of the
	// tag-derived one.
	ConfidenceFromScore bool
	// Models are the known model definitions by id (fetched from MISP's decayingModel API).
	Models map[string]misp.DecayingModel
	// Parameters, when set, are the configured parameters of the chosen model; they take
	// precedence over Models.
	Parameters *misp.DecayingModel
}

// decayReferenceTolerance is how far the reference time recovered from a score may be from the
// attribute's last_seen or timestamp and still be taken to be it: the score was computed by
// MISP a little before the conversion (request latency), never exactly at now.
const decayReferenceTolerance = 10 * time.Minute

// decayVerdict is what the decay policy says about one attribute.
type decayVerdict struct {
	// judged is false when decay is off or no entry of the chosen model scores the attribute.
	judged bool
	score  float64
	// until is when the score falls below the floor; zero when unknown (parameters not known).
	until time.Time
}

// decay judges attr by its decay scores; skip is the detail of a SkipDecayed decision.
func (c *converter) decay(attr *misp.Attribute) (v decayVerdict, skip string) {
	d := &c.opts.Decay
	if !d.Enabled || len(attr.DecayScores) == 0 {
		return v, ""
	}
	var best *misp.DecayScore // the highest-scoring entry that keeps the attribute
	var worst *misp.DecayScore
	unbounded := false
	for i := range attr.DecayScores {
		e := &attr.DecayScores[i]
		if d.Model != DecayAnyModel && e.ModelID != d.Model && e.ModelName != d.Model {
			continue
		}
		v.judged = true
		if e.Decayed || e.Score < d.MinScore {
			if worst == nil || e.Score > worst.Score {
				worst = e
			}
			continue
		}
		if best == nil || e.Score > best.Score {
			best = e
		}
		until, ok := c.decayUntil(attr, e)
		switch {
		case !ok:
			unbounded = true
		case until.After(v.until):
			v.until = until
		}
	}
	if !v.judged {
		return v, ""
	}
	if best == nil {
		if worst.Decayed {
			return v, fmt.Sprintf("decaying model %s marks it decayed (score %.1f)", modelLabel(worst), worst.Score)
		}
		return v, fmt.Sprintf("score %.1f of decaying model %s is below the sink's min_score %g", worst.Score, modelLabel(worst), d.MinScore)
	}
	v.score = best.Score
	if unbounded {
		v.until = time.Time{}
	}
	return v, ""
}

func modelLabel(e *misp.DecayScore) string {
	if e.ModelName == "" {
		return e.ModelID
	}
	return fmt.Sprintf("%q (id %s)", e.ModelName, e.ModelID)
}

// decayUntil is when the entry's score falls below the floor, max(MinScore, threshold). The
// score falls from the last true-positive sighting, else last_seen, else the attribute's
// timestamp; the event does not carry sightings, so the reference time is recovered from the
// score itself and taken to be last_seen or the timestamp when it is within
// decayReferenceTolerance of it. Otherwise (a sighting) it is kept to the second, as MISP
// stores sightings; the request latency then moves it by seconds, which can cost one refresh
// upload inside the refresh window. ok is false when the model's parameters are not known or
// its score does not fall with time.
func (c *converter) decayUntil(attr *misp.Attribute, e *misp.DecayScore) (time.Time, bool) {
	d := &c.opts.Decay
	var model misp.DecayingModel
	switch m, known := d.Models[e.ModelID]; {
	case d.Parameters != nil:
		model = *d.Parameters
	case known:
		model = m
	default:
		return time.Time{}, false
	}
	floor := math.Max(d.MinScore, model.Threshold)
	cross, ok := model.ElapsedAt(e.BaseScore, floor)
	if !ok {
		return time.Time{}, false
	}
	age, ok := model.ElapsedAt(e.BaseScore, e.Score)
	if !ok {
		return time.Time{}, false
	}
	ref := c.now.Add(-age)
	candidate := attr.Timestamp
	if attr.LastSeen != nil {
		candidate = *attr.LastSeen
	}
	if candidate.IsZero() || ref.Sub(candidate).Abs() > decayReferenceTolerance {
		candidate = ref.Round(time.Second)
	}
	return candidate.Add(cross).UTC(), true
}

// scoreConfidence is a decay score as an indicator confidence: rounded, within 0-100.
func scoreConfidence(score float64) int {
	return int(math.Max(0, math.Min(100, math.Round(score))))
}
