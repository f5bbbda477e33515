package defender

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

var budgetSeed = flag.Uint64("defender.seed", 0, "seed for TestBudgetProperties (0: time-based, logged)")

// mdeModel applies a budget's changes as MDE would hold them.
type mdeModel map[string]bool

func (m mdeModel) apply(t *testing.T, changes []Change, capacity int) {
	t.Helper()
	seenHold := false
	for _, c := range changes {
		switch {
		case c.Hold && m[c.Key]:
			t.Fatalf("hold of %s which MDE already holds", c.Key)
		case !c.Hold && !m[c.Key]:
			t.Fatalf("release of %s which MDE does not hold", c.Key)
		case !c.Hold && seenHold:
			t.Fatalf("release of %s after a hold in the same call: %v", c.Key, changes)
		}
		seenHold = seenHold || c.Hold
		if c.Hold {
			m[c.Key] = true
			if len(m) > capacity {
				t.Fatalf("MDE would hold %d > capacity %d", len(m), capacity)
			}
		} else {
			delete(m, c.Key)
		}
	}
}

func checkInvariants(t *testing.T, b *Budget, scores map[string]float64, mde mdeModel) {
	t.Helper()
	held := 0
	minHeld, maxWaiting := 2.0, -1.0
	for k, s := range scores {
		if b.Holds(k) != mde[k] {
			t.Fatalf("budget and MDE disagree about %s: budget %v", k, b.Holds(k))
		}
		if b.Holds(k) {
			held++
			minHeld = min(minHeld, s)
		} else {
			maxWaiting = max(maxWaiting, s)
		}
	}
	if len(mde) != held {
		t.Fatalf("MDE holds %d, of which %d are candidates", len(mde), held)
	}
	if want := min(b.Capacity(), len(scores)); held != want {
		t.Fatalf("%d held, want min(capacity %d, candidates %d)", held, b.Capacity(), len(scores))
	}
	if held > 0 && maxWaiting > minHeld+b.margin {
		t.Fatalf("waiting score %v beats held %v by more than the margin %v", maxWaiting, minHeld, b.margin)
	}
}

func topKeys(scores map[string]float64, n int) []string {
	keys := make([]string, 0, len(scores))
	for k := range scores {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return better(&slotEntry{key: keys[i], score: scores[keys[i]]}, &slotEntry{key: keys[j], score: scores[keys[j]]})
	})
	keys = keys[:min(n, len(keys))]
	slices.Sort(keys)
	return keys
}

func scoresOf(keys []string, scores map[string]float64) []float64 {
	out := make([]float64, len(keys))
	for i, k := range keys {
		out[i] = scores[k]
	}
	slices.Sort(out)
	return out
}

func heldKeys(b *Budget) []string {
	var out []string
	for _, e := range b.Entries() {
		if e.Held {
			out = append(out, e.Key)
		}
	}
	slices.Sort(out)
	return out
}

func TestBudgetProperties(t *testing.T) {
	seed := *budgetSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -defender.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	for run := range 200 {
		margin := []float64{0, 0.01, 0.1}[run%3]
		b := NewBudget(rng.IntN(20), margin)
		scores := map[string]float64{}
		mde := mdeModel{}
		for range 300 {
			var changes []Change
			key := fmt.Sprintf("k%02d", rng.IntN(40))
			switch op := rng.IntN(10); {
			case op < 6:
				s := float64(rng.IntN(100)) / 100
				scores[key] = s
				changes = b.Set(key, s)
			case op < 9:
				delete(scores, key)
				changes = b.Remove(key)
			default:
				changes = b.SetCapacity(rng.IntN(20))
			}
			mde.apply(t, changes, b.Capacity())
			checkInvariants(t, b, scores, mde)
			if margin == 0 && !slices.Equal(scoresOf(heldKeys(b), scores), scoresOf(topKeys(scores, b.Capacity()), scores)) {
				t.Fatalf("without margin the held set must be the exact top %d (ties aside)", b.Capacity())
			}
		}
		// Restart: the persisted state restores unchanged and needs no change.
		restored := NewBudget(b.Capacity(), margin)
		restored.Restore(b.Entries())
		if ch := restored.Rebalance(); len(ch) != 0 {
			t.Fatalf("a restored budget wants changes %v", ch)
		}
		if !slices.Equal(heldKeys(restored), heldKeys(b)) {
			t.Fatal("restore changed the held set")
		}
	}
}

func TestBudgetFiftyOfEighty(t *testing.T) {
	const margin = 0.005
	b := NewBudget(50, margin)
	scores := map[string]float64{}
	mde := mdeModel{}
	// Candidates arrive one by one in random order; their scores are 1/80 apart, more than
	// the margin, so the best 50 are unambiguous and must be exactly what is held.
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(80) {
		k := fmt.Sprintf("c%02d", i)
		scores[k] = float64(i) / 80
		mde.apply(t, b.Set(k, scores[k]), 50)
	}
	checkInvariants(t, b, scores, mde)
	if !slices.Equal(heldKeys(b), topKeys(scores, 50)) {
		t.Fatalf("held %v, want the 50 best", heldKeys(b))
	}
	// A clearly better candidate swaps exactly one.
	changes := b.Set("new", 2)
	if len(changes) != 2 || changes[0].Hold || changes[1] != (Change{Key: "new", Hold: true}) {
		t.Fatalf("a better candidate gave changes %v, want one release then one hold", changes)
	}
	// One within the margin of the worst held changes nothing.
	worst := b.Standing("new").WorstScore
	if ch := b.Set("close", worst+margin/2); len(ch) != 0 {
		t.Fatalf("a candidate within the margin caused changes %v", ch)
	}
	if st := b.Standing("close"); st.Held || st.Worst == "" || st.String() == "" {
		t.Fatalf("standing %+v", st)
	}
	// A revocation frees its slot at once for the best waiting candidate.
	ch := b.Remove("new")
	if len(ch) != 2 || ch[0] != (Change{Key: "new", Hold: false}) || !ch[1].Hold {
		t.Fatalf("revoking a held candidate gave %v", ch)
	}
}

func TestScore(t *testing.T) {
	w := ScoreWeights{Confidence: 0.4, Decay: 0.2, Recency: 0.2, ThreatLevel: 0.2, RecencyHalfLife: 30 * 24 * time.Hour,
		TypeWeights: map[Type]float64{TypeIPAddress: 0.5}}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	base := RankInputs{Confidence: 50, ThreatLevel: 2, Seen: now.Add(-30 * 24 * time.Hour), Type: TypeDomainName}
	s := Score(base, w, now)
	if want := (0.4*0.5 + 0.2*0.5 + 0.2*(2.0/3)) / 0.8; abs(s-want) > 1e-9 {
		t.Errorf("score %v, want %v", s, want)
	}
	better := func(name string, f func(*RankInputs)) {
		in := base
		f(&in)
		if Score(in, w, now) <= s {
			t.Errorf("%s did not raise the score", name)
		}
	}
	better("higher confidence", func(in *RankInputs) { in.Confidence = 90 })
	better("higher threat level", func(in *RankInputs) { in.ThreatLevel = 1 })
	better("more recent", func(in *RankInputs) { in.Seen = now })
	d := 100.0
	better("a high decay score", func(in *RankInputs) { in.Decay = &d })
	ip := base
	ip.Type = TypeIPAddress
	if got := Score(ip, w, now); abs(got-s/2) > 1e-9 {
		t.Errorf("type weight 0.5 gave %v, want %v", got, s/2)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
