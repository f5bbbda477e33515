package defender

import (
	"math"
	"time"
)

// ScoreWeights configure Score. The daemon fills them from config/defaults.go.
type ScoreWeights struct {
	// Confidence, Decay, Recency and ThreatLevel weigh the four terms; a term whose input is
	// missing (no decay score) drops out and the others are renormalised.
	Confidence, Decay, Recency, ThreatLevel float64
	// RecencyHalfLife is the age at which the recency term is 0.5.
	RecencyHalfLife time.Duration
	// TypeWeights multiply the score per indicator type (missing: 1).
	TypeWeights map[Type]float64
}

// Score is the documented rank of a candidate for a slot under the tenant's cap, in 0..1
// times its type weight (higher is better):
//
//	score = typeWeight × (wc·c + wd·d + wr·r + wt·t) / (wc + wd + wr + wt)
//
// with c = confidence/100 (0.5 when the indicator has none), d = decay score/100 (term left
// out, with its weight, when MISP gave none), r = 2^(−age/half-life) where age is the time
// since MISP last changed the attribute, and t = 1, 2/3, 1/3, 0 for MISP threat levels high,
// medium, low, undefined.
func Score(in RankInputs, w ScoreWeights, now time.Time) float64 {
	c := 0.5
	if in.Confidence >= 0 {
		c = math.Min(float64(in.Confidence), 100) / 100
	}
	r := 1.0
	if w.RecencyHalfLife > 0 && !in.Seen.IsZero() {
		if age := now.Sub(in.Seen); age > 0 {
			r = math.Exp2(-float64(age) / float64(w.RecencyHalfLife))
		}
	}
	t := 0.0
	if in.ThreatLevel >= 1 && in.ThreatLevel <= 3 {
		t = float64(4-in.ThreatLevel) / 3
	}
	sum := w.Confidence*c + w.Recency*r + w.ThreatLevel*t
	total := w.Confidence + w.Recency + w.ThreatLevel
	if in.Decay != nil {
		sum += w.Decay * math.Max(0, math.Min(*in.Decay, 100)) / 100
		total += w.Decay
	}
	score := 0.0
	if total > 0 {
		score = sum / total
	}
	if tw, ok := w.TypeWeights[in.Type]; ok {
		score *= tw
	}
	return score
}
