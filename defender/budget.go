package defender

import (
	"container/heap"
	"fmt"
)

// Budget decides which candidates hold one of a tenant's indicator slots: the best by score,
// filling free slots at once, and swapping a held candidate out only when a waiting one
// beats it by more than the margin (hysteresis, so that scores moving a little never churn
// the set). It is pure bookkeeping: the caller imports what it is told to hold and deletes
// what it is told to release, and persists the state (Entries, Restore).
//
// Invariants after every call: at most Capacity candidates are held; a free slot exists only
// when nothing waits; no waiting candidate's score exceeds a held one's by more than Margin.
// A Budget is not safe for concurrent use.
type Budget struct {
	capacity int
	margin   float64
	entries  map[string]*slotEntry
	held     rankHeap // worst on top
	waiting  rankHeap // best on top
}

type slotEntry struct {
	key   string
	score float64
	held  bool
	index int
}

// Change tells the caller to import (Hold) or delete (!Hold) a candidate in MDE. Every call
// returns releases before holds: apply them in order.
type Change struct {
	Key  string
	Hold bool
}

// Entry is a candidate's persisted state.
type Entry struct {
	Key   string
	Score float64
	Held  bool
}

// better orders candidates: higher score first, then the smaller key (deterministic ties).
func better(a, b *slotEntry) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.key < b.key
}

// NewBudget returns an empty budget of capacity slots and the given swap margin.
func NewBudget(capacity int, margin float64) *Budget {
	return &Budget{
		capacity: max(capacity, 0), margin: max(margin, 0), entries: make(map[string]*slotEntry),
		held:    rankHeap{worstFirst: true},
		waiting: rankHeap{},
	}
}

// Capacity returns the number of slots.
func (b *Budget) Capacity() int { return b.capacity }

// Len returns the number of candidates; HeldCount those holding a slot.
func (b *Budget) Len() int       { return len(b.entries) }
func (b *Budget) HeldCount() int { return b.held.Len() }

// Set adds a candidate or changes its score and returns the changes that restore the
// invariants (holding it, or swapping).
func (b *Budget) Set(key string, score float64) []Change {
	if e, ok := b.entries[key]; ok {
		e.score = score
		if e.held {
			heap.Fix(&b.held, e.index)
		} else {
			heap.Fix(&b.waiting, e.index)
		}
	} else {
		e := &slotEntry{key: key, score: score}
		b.entries[key] = e
		heap.Push(&b.waiting, e)
	}
	return b.rebalance()
}

// Remove drops a candidate (revoked, filtered out, deleted in MISP); a slot it held is
// released and refilled at once.
func (b *Budget) Remove(key string) []Change {
	e, ok := b.entries[key]
	if !ok {
		return nil
	}
	delete(b.entries, key)
	var out []Change
	if e.held {
		heap.Remove(&b.held, e.index)
		out = append(out, Change{Key: key, Hold: false})
	} else {
		heap.Remove(&b.waiting, e.index)
	}
	return append(out, b.rebalance()...)
}

// SetCapacity changes the number of slots (read-back found other tools' indicators, or the
// configuration changed).
func (b *Budget) SetCapacity(n int) []Change {
	b.capacity = max(n, 0)
	return b.rebalance()
}

// Rebalance returns the changes that restore the invariants (none after any other call;
// after Restore, those a changed margin or capacity requires).
func (b *Budget) Rebalance() []Change { return b.rebalance() }

func (b *Budget) rebalance() []Change {
	var out []Change
	for b.held.Len() > b.capacity {
		e := heap.Pop(&b.held).(*slotEntry)
		e.held = false
		heap.Push(&b.waiting, e)
		out = append(out, Change{Key: e.key, Hold: false})
	}
	for b.held.Len() < b.capacity && b.waiting.Len() > 0 {
		e := heap.Pop(&b.waiting).(*slotEntry)
		e.held = true
		heap.Push(&b.held, e)
		out = append(out, Change{Key: e.key, Hold: true})
	}
	for b.held.Len() > 0 && b.waiting.Len() > 0 && b.waiting.top().score > b.held.top().score+b.margin {
		in := heap.Pop(&b.waiting).(*slotEntry)
		outE := heap.Pop(&b.held).(*slotEntry)
		in.held, outE.held = true, false
		heap.Push(&b.held, in)
		heap.Push(&b.waiting, outE)
		out = append(out, Change{Key: outE.key, Hold: false}, Change{Key: in.key, Hold: true})
	}
	return compact(out)
}

// compact folds the changes of each key into one (none when it ends where it started) and
// puts releases before holds, so that MDE never holds more than the capacity in between.
func compact(changes []Change) []Change {
	if len(changes) < 2 {
		return changes
	}
	first := make(map[string]int, len(changes))
	last := make(map[string]bool, len(changes))
	var order []string
	for i, c := range changes {
		if _, ok := first[c.Key]; !ok {
			first[c.Key] = i
			order = append(order, c.Key)
		}
		last[c.Key] = c.Hold
	}
	out := make([]Change, 0, len(order))
	var holds []Change
	for _, k := range order {
		startHeld := !changes[first[k]].Hold // the first change flips the starting state
		switch {
		case last[k] == startHeld:
		case last[k]:
			holds = append(holds, Change{Key: k, Hold: true})
		default:
			out = append(out, Change{Key: k, Hold: false})
		}
	}
	return append(out, holds...)
}

// Holds reports whether key holds a slot.
func (b *Budget) Holds(key string) bool {
	e, ok := b.entries[key]
	return ok && e.held
}

// Entries returns every candidate's state, for persistence.
func (b *Budget) Entries() []Entry {
	out := make([]Entry, 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, Entry{Key: e.key, Score: e.score, Held: e.held})
	}
	return out
}

// Restore loads persisted entries as they were, without rebalancing: held stays held (MDE
// holds them). Call Rebalance afterwards.
func (b *Budget) Restore(entries []Entry) {
	for _, en := range entries {
		e := &slotEntry{key: en.Key, score: en.Score, held: en.Held}
		b.entries[en.Key] = e
		if en.Held {
			heap.Push(&b.held, e)
		} else {
			heap.Push(&b.waiting, e)
		}
	}
}

// Standing explains a candidate's place: whether it holds a slot and why, or which held
// candidate outranks it and by how much it would have to rise.
type Standing struct {
	Known bool
	Held  bool
	Score float64
	// Worst is the held candidate with the lowest score and its score: a waiting candidate
	// needs more than WorstScore+Margin to take its slot; a held one keeps its slot while no
	// waiting one beats it by more than Margin.
	Worst      string
	WorstScore float64
	// BestWaiting is the waiting candidate with the highest score.
	BestWaiting      string
	BestWaitingScore float64
	Margin           float64
	Capacity, InUse  int
}

// Standing returns key's standing.
func (b *Budget) Standing(key string) Standing {
	st := Standing{Margin: b.margin, Capacity: b.capacity, InUse: b.held.Len()}
	if b.held.Len() > 0 {
		st.Worst, st.WorstScore = b.held.top().key, b.held.top().score
	}
	if b.waiting.Len() > 0 {
		st.BestWaiting, st.BestWaitingScore = b.waiting.top().key, b.waiting.top().score
	}
	if e, ok := b.entries[key]; ok {
		st.Known, st.Held, st.Score = true, e.held, e.score
	}
	return st
}

// String says it in a sentence (for `status`).
func (st Standing) String() string {
	switch {
	case !st.Known:
		return "not a candidate of this tenant's budget"
	case st.Held && st.BestWaiting == "":
		return fmt.Sprintf("holds a slot (score %.4f; %d of %d slots in use, nothing waiting)", st.Score, st.InUse, st.Capacity)
	case st.Held:
		return fmt.Sprintf("holds a slot (score %.4f; the best waiting candidate %s scores %.4f, which does not beat the lowest held score %.4f by more than the margin %.4f)",
			st.Score, st.BestWaiting, st.BestWaitingScore, st.WorstScore, st.Margin)
	case st.Capacity == 0:
		return fmt.Sprintf("waits (score %.4f): the budget has no slots", st.Score)
	default:
		return fmt.Sprintf("waits (score %.4f): outranked by %s, the lowest-scoring held indicator (score %.4f); it needs more than %.4f to take that slot",
			st.Score, st.Worst, st.WorstScore, st.WorstScore+st.Margin)
	}
}

// rankHeap is a heap of entries: best on top, or worst on top when worstFirst.
type rankHeap struct {
	items      []*slotEntry
	worstFirst bool
}

func (h *rankHeap) Len() int { return len(h.items) }
func (h *rankHeap) Less(i, j int) bool {
	if h.worstFirst {
		return better(h.items[j], h.items[i])
	}
	return better(h.items[i], h.items[j])
}
func (h *rankHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *rankHeap) Push(x any) {
	e := x.(*slotEntry)
	e.index = len(h.items)
	h.items = append(h.items, e)
}
func (h *rankHeap) Pop() any {
	n := len(h.items)
	e := h.items[n-1]
	h.items[n-1] = nil
	h.items = h.items[:n-1]
	return e
}
func (h *rankHeap) top() *slotEntry { return h.items[0] }
