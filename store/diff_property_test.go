package store

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

var propertySeed = flag.Int64("store.seed", 0, "seed for TestDiffProperties (0: time-based, logged)")

// diffModel is an independent, in-memory statement of the diff rules, and a fake Sentinel
// that checks every upload it is handed against them.
type diffModel struct {
	t        *testing.T
	objects  map[string]*modelObject // by generation-0 id
	eventIDs map[string][]string
	desired  map[string]map[string]string // event -> base id -> hash (last desired set)

	queued   map[string][]modelVersion // stamped id -> versions queued, in order
	next     map[string]int            // stamped id -> index of the next version that may be uploaded
	lastMod  map[string]string         // stamped id -> modified of the last upload handed out
	revoked  map[string]bool           // stamped id -> a revocation was handed out
	sentinel map[string]modelVersion   // stamped id -> last accepted version

	// Shared context objects: the live relationships referencing each, and each
	// relationship's target (and a joint relationship's source).
	refs      map[string]int
	relTarget map[string]string
	relSource map[string]string
	// Joint relationships (between two context objects, shared by the events desiring
	// them): each event's marks and each relationship's number of marks.
	marks   map[string]map[string]bool
	owners  map[string]int
	decided map[string]bool          // stamped id -> the sink accepted or rejected a version
	last    map[string][]stix.Object // event -> last desired set
}

type modelObject struct {
	gen     uint32
	hash    string
	revoked bool
	shared  bool
	event   string
}

type modelVersion struct {
	hash    string
	revoked bool
}

func newDiffModel(t *testing.T) *diffModel {
	return &diffModel{
		t: t, objects: map[string]*modelObject{}, eventIDs: map[string][]string{},
		desired: map[string]map[string]string{}, queued: map[string][]modelVersion{},
		next: map[string]int{}, lastMod: map[string]string{}, revoked: map[string]bool{},
		sentinel: map[string]modelVersion{}, refs: map[string]int{}, relTarget: map[string]string{},
		relSource: map[string]string{}, marks: map[string]map[string]bool{}, owners: map[string]int{},
		last: map[string][]stix.Object{}, decided: map[string]bool{},
	}
}

func (m *diffModel) queue(base string, o *modelObject) {
	id := stix.GenerationID(base, o.gen)
	m.queued[id] = append(m.queued[id], modelVersion{o.hash, o.revoked})
}

// apply returns the stats the store must report and records the versions it must queue.
func (m *diffModel) apply(event string, desired []stix.Object) DiffStats {
	var want DiffStats
	in := map[string]bool{}
	var ids []string
	m.desired[event] = map[string]string{}
	m.last[event] = desired
	oldMarks := m.marks[event]
	m.marks[event] = map[string]bool{}
	for _, d := range desired {
		in[d.ID] = true
		if !d.Shared {
			ids = append(ids, d.ID)
			m.desired[event][d.ID] = d.Hash
		}
		if d.Shared && d.TargetRef != "" {
			m.marks[event][d.ID] = true
			if !oldMarks[d.ID] {
				m.owners[d.ID]++
			}
		}
		o, ok := m.objects[d.ID]
		switch {
		case !ok:
			o = &modelObject{}
			m.objects[d.ID] = o
			want.New++
		case o.revoked:
			o.gen++
			want.New++
		case o.hash != d.Hash:
			want.Changed++
		default:
			want.Unchanged++
			if !d.Shared {
				o.event = event
			}
			continue
		}
		o.hash, o.revoked, o.shared = d.Hash, false, d.Shared
		if !d.Shared {
			o.event = event
		}
		m.queue(d.ID, o)
		if d.TargetRef != "" {
			m.refs[d.TargetRef]++
			m.relTarget[d.ID] = d.TargetRef
			if d.Shared {
				m.refs[d.SourceRef]++
				m.relSource[d.ID] = d.SourceRef
			}
		}
	}
	for _, id := range m.eventIDs[event] {
		o := m.objects[id]
		if in[id] || o == nil || o.revoked || o.shared || o.event != event {
			continue
		}
		m.revokeRelationship(id, o, &want)
	}
	for id := range oldMarks {
		if in[id] {
			continue
		}
		m.owners[id]--
		if o := m.objects[id]; m.owners[id] == 0 && !o.revoked {
			m.revokeRelationship(id, o, &want)
		}
	}
	m.eventIDs[event] = ids
	return want
}

// revokeRelationship revokes a relationship (or an indicator) and releases the shared
// objects it references, revoking those it was the last reference of.
func (m *diffModel) revokeRelationship(id string, o *modelObject, want *DiffStats) {
	o.revoked = true
	want.Revoked++
	m.queue(id, o)
	release := func(ref string) {
		m.refs[ref]--
		if ap := m.objects[ref]; m.refs[ref] == 0 && ap != nil && !ap.revoked && ap.shared {
			ap.revoked = true
			want.Revoked++
			m.queue(ref, ap)
		}
	}
	if target, ok := m.relTarget[id]; ok {
		release(target)
	}
	if source, ok := m.relSource[id]; ok && o.shared {
		release(source)
	}
}

// handOut checks one item handed out by Begin and returns its decoded form.
func (m *diffModel) handOut(it Item) upload {
	t := m.t
	u := decodeUpload(t, it)
	versions := m.queued[u.ID]
	j := m.next[u.ID]
	for j < len(versions) && versions[j] != (modelVersion{u.Hash, u.Revoked}) {
		j++ // skipped versions were coalesced
	}
	if j == len(versions) {
		t.Fatalf("upload %+v was never queued (queued after position %d: %+v)", u, m.next[u.ID], versions)
	}
	if last, ok := m.lastMod[u.ID]; ok && u.Modified <= last {
		t.Fatalf("upload %+v: modified not after %s", u, last)
	}
	if m.revoked[u.ID] && !u.Revoked {
		t.Fatalf("upload %+v reuses a revoked id", u)
	}
	m.next[u.ID] = j + 1
	m.decided[u.ID] = true
	m.lastMod[u.ID] = u.Modified
	m.revoked[u.ID] = m.revoked[u.ID] || u.Revoked
	return u
}

// checkBatchRefs fails when a relationship of b names an object the sink was not sent (and
// answered for: accepted, or rejected, which the store cannot prevent) before, and that is
// not earlier in the batch.
func (m *diffModel) checkBatchRefs(b *Batch) {
	t := m.t
	taken := map[string]bool{}
	for _, it := range b.Items {
		if stix.IsRelationship(it.ID) {
			src, dst, err := stix.RelationshipRefs(it.Object)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range []string{src, dst} {
				if !m.decided[ref] && !taken[ref] {
					t.Fatalf("batch hands out %s naming %s, which the sink was not sent", it.ID, ref)
				}
			}
		}
		taken[it.ID] = true
	}
}

// contextObject is a shared attack pattern of the property test (a threat actor for n >= 3).
func contextObject(n int, hash string) stix.Object {
	typ := "attack-pattern"
	if n >= 3 {
		typ = "threat-actor"
	}
	id := fmt.Sprintf("%s--%08d-0000-4000-8000-000000000000", typ, n)
	b, _ := json.Marshal(map[string]any{"type": typ, "spec_version": "2.1", "id": id, "name": hash, "x_hash": hash})
	return stix.Object{ID: id, Type: typ, Hash: hash, Shared: true, Body: b}
}

// isContext reports whether id is a context object's of the property test.
func isContext(id string) bool {
	return strings.HasPrefix(id, "attack-pattern--") || strings.HasPrefix(id, "threat-actor--")
}

// jointRelationship is the relationship of type typ between two context objects, shared by
// the events that desire it.
func jointRelationship(source, typ, target string) stix.Object {
	o := relationshipTo(source, target)
	o.ID = stix.RelationshipID(source, typ, target)
	o.Body, _ = json.Marshal(map[string]any{"type": "relationship", "spec_version": "2.1", "id": o.ID,
		"relationship_type": typ, "source_ref": source, "target_ref": target, "x_hash": "r"})
	o.Shared = true
	return o
}

// relationshipTo is the indicates relationship from source to target.
func relationshipTo(source, target string) stix.Object {
	id := stix.RelationshipID(source, "indicates", target)
	b, _ := json.Marshal(map[string]any{"type": "relationship", "spec_version": "2.1", "id": id,
		"relationship_type": "indicates", "source_ref": source, "target_ref": target, "x_hash": "r"})
	return stix.Object{ID: id, Type: "relationship", Hash: "r", Body: b, SourceRef: source, TargetRef: target}
}

// withContext appends to desired attack patterns and relationships from some of its
// indicators to them, each pattern before its first relationship.
func withContext(rng *rand.Rand, desired []stix.Object) []stix.Object {
	var rels []stix.Object
	added := map[string]bool{}
	n := len(desired)
	for _, o := range desired[:n] {
		if o.Type != "indicator" || rng.Intn(3) > 0 {
			continue
		}
		for _, k := range rng.Perm(3)[:1+rng.Intn(2)] {
			ap := contextObject(k, []string{"p", "q"}[rng.Intn(2)])
			if !added[ap.ID] {
				added[ap.ID] = true
				desired = append(desired, ap)
			}
			rels = append(rels, relationshipTo(o.ID, ap.ID))
		}
	}
	// Joint relationships between context objects the set holds, as MISP's cluster
	// relations give them (one technique a sub-technique of another).
	for src := range 3 {
		srcID := contextObject(src, "").ID
		if !added[srcID] {
			continue
		}
		for _, dst := range rng.Perm(3)[:rng.Intn(3)] {
			if dstID := contextObject(dst, "").ID; dst != src && added[dstID] {
				rels = append(rels, jointRelationship(srcID, "subtechnique-of", dstID))
			}
		}
	}
	return append(desired, rels...)
}

func TestDiffProperties(t *testing.T) {
	seed := *propertySeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -args -store.seed=%d)", seed, seed)
	runs, steps := 16, 150
	if testing.Short() {
		runs = 3
	}
	for run := range runs {
		t.Run(fmt.Sprint("run", run), func(t *testing.T) {
			checkDiffSequence(t, rand.New(rand.NewSource(seed+int64(run))), steps)
		})
	}
}

func checkDiffSequence(t *testing.T, rng *rand.Rand, steps int) {
	s := openTest(t, Options{})
	m := newDiffModel(t)
	const sink = "ws"
	events := []string{"ev-a", "ev-b", "ev-c"}
	org := "identity--00000000-0000-4000-8000-0000000000aa"
	hashes := []string{"x", "y", "z"}
	now := t0
	var inFlight *Batch

	for step := range steps {
		// The clock mostly advances by less than a millisecond and sometimes goes back.
		now = now.Add(time.Duration(rng.Intn(3000)-300) * time.Microsecond)
		switch r := rng.Intn(10); {
		case r < 6: // a new version of an event
			e := rng.Intn(len(events))
			var desired []stix.Object
			for i := range 15 {
				if rng.Intn(3) > 0 {
					desired = append(desired, indicator(indicatorID(e*100+i), hashes[rng.Intn(len(hashes))], time.Time{}))
				}
			}
			if rng.Intn(2) == 0 {
				desired = append(desired, identity(org, hashes[rng.Intn(2)]))
			}
			rng.Shuffle(len(desired), func(i, j int) { desired[i], desired[j] = desired[j], desired[i] })
			desired = withContext(rng, desired)
			want := m.apply(events[e], desired)
			got, err := s.Apply(sink, events[e], desired, now)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if got != want {
				t.Fatalf("step %d: apply %s: stats %+v, want %+v", step, events[e], got, want)
			}
			for base := range m.refs {
				if n, _ := s.References(sink, base); n != int64(m.refs[base]) {
					t.Fatalf("step %d: %s has %d references in the store, want %d", step, base, n, m.refs[base])
				}
			}
		case r < 7: // an event is deleted
			e := rng.Intn(len(events))
			want := m.apply(events[e], nil)
			got, err := s.RemoveEvent(sink, events[e], now)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if got != want {
				t.Fatalf("step %d: remove %s: stats %+v, want %+v", step, events[e], got, want)
			}
		default: // the pusher begins or ends a batch
			if inFlight == nil {
				b, err := s.Begin(sink, 1+rng.Intn(20))
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				m.checkBatchRefs(b)
				if len(b.Items) > 0 {
					inFlight = b
				}
				continue
			}
			// The pusher keeps a whole batch (429, 5xx, network error) or commits every item
			// (accepted or rejected): it never accepts an item after retrying an earlier one.
			var o Outcome
			keepAll := rng.Intn(10) == 0
			for i, it := range inFlight.Items {
				switch k := rng.Intn(9); {
				case keepAll:
					o.Retry = append(o.Retry, i)
				case k < 7:
					o.Accepted = append(o.Accepted, i)
					u := m.handOut(it)
					m.sentinel[u.ID] = modelVersion{u.Hash, u.Revoked}
				default:
					o.Rejected = append(o.Rejected, Rejection{Index: i, Message: "rejected by test"})
					m.handOut(it)
					m.next[it.ID]-- // a requeue may hand the same version out again
				}
			}
			if err := s.End(inFlight, o, now); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			inFlight = nil
		}
	}

	// Settle: end the batch in flight, re-queue dead letters, drain.
	if inFlight != nil {
		if err := s.End(inFlight, Outcome{}, now); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Second)
	if _, err := s.Requeue(sink, nil, now); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := s.Begin(sink, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Items) == 0 {
			break
		}
		m.checkBatchRefs(b)
		var acc []int
		for i, it := range b.Items {
			u := m.handOut(it)
			m.sentinel[u.ID] = modelVersion{u.Hash, u.Revoked}
			acc = append(acc, i)
		}
		if err := s.End(b, Outcome{Accepted: acc}, now); err != nil {
			t.Fatal(err)
		}
	}

	// Sentinel now holds exactly the last desired sets: the current generation of every
	// desired object with its last hash, and every other id it ever accepted revoked.
	want := map[string]string{}
	for _, ids := range m.desired {
		for id, h := range ids {
			want[id] = h
		}
	}
	for base, o := range m.objects {
		if o.shared && stix.IsRelationship(base) {
			// Live exactly while an event desires it, then revoked.
			if n, err := s.References(sink, base); err != nil || n != int64(m.owners[base]) {
				t.Errorf("%s: store counts %d owners (%v), want %d", base, n, err, m.owners[base])
			}
			for gen := uint32(0); gen <= o.gen; gen++ {
				got, ok := m.sentinel[stix.GenerationID(base, gen)]
				if gen == o.gen && m.owners[base] > 0 {
					if !ok || got.revoked || o.revoked {
						t.Errorf("%s (gen %d): sentinel holds %+v, want live with %d owners", base, gen, got, m.owners[base])
					}
					continue
				}
				if ok && !got.revoked {
					t.Errorf("%s (gen %d): sentinel holds %+v, want revoked (no owner)", base, gen, got)
				}
			}
			continue
		}
		if o.shared && isContext(base) {
			// Live exactly while a live relationship targets it, then revoked.
			if n, err := s.References(sink, base); err != nil || n != int64(m.refs[base]) {
				t.Errorf("%s: store counts %d references (%v), want %d", base, n, err, m.refs[base])
			}
			for gen := uint32(0); gen <= o.gen; gen++ {
				got, ok := m.sentinel[stix.GenerationID(base, gen)]
				if gen == o.gen && !o.revoked {
					if !ok || got.revoked || got.hash != o.hash || m.refs[base] == 0 {
						t.Errorf("%s (gen %d): sentinel holds %+v, want %s live with %d references", base, gen, got, o.hash, m.refs[base])
					}
					continue
				}
				if ok && !got.revoked {
					t.Errorf("%s (gen %d): sentinel holds %+v, want revoked (%d references)", base, gen, got, m.refs[base])
				}
			}
			continue
		}
		if o.shared {
			got := m.sentinel[base]
			if got.revoked || got.hash != o.hash {
				t.Errorf("shared %s: sentinel holds %+v, want %s live", base, got, o.hash)
			}
			continue
		}
		for gen := uint32(0); gen <= o.gen; gen++ {
			id := stix.GenerationID(base, gen)
			got, ok := m.sentinel[id]
			if h, desired := want[base]; desired && gen == o.gen {
				if !ok || got.revoked || got.hash != h {
					t.Errorf("%s (gen %d): sentinel holds %+v, want %s live", base, gen, got, h)
				}
				continue
			}
			if ok && !got.revoked {
				t.Errorf("%s (gen %d): sentinel holds %+v, want revoked", base, gen, got)
			}
		}
	}
	var live int
	for _, ids := range m.desired {
		live += len(ids)
	}
	for base, o := range m.objects {
		if o.shared && !o.revoked && (isContext(base) || stix.IsRelationship(base)) {
			live++
		}
	}
	if len(m.objects) > 0 && m.objects[org] != nil {
		live++
	}
	st, err := s.Stats(sink)
	if err != nil {
		t.Fatal(err)
	}
	if st.OutboxDepth != 0 || st.DeadLetters != 0 || st.Live != int64(live) {
		t.Errorf("stats %+v, want empty outbox and %d live", st, live)
	}
	var evs []string
	if err := s.Events(sink, func(e string) error { evs = append(evs, e); return nil }); err != nil {
		t.Fatal(err)
	}
	var wantEvs []string
	for e, ids := range m.desired {
		if len(ids) > 0 {
			wantEvs = append(wantEvs, e)
		}
	}
	slices.Sort(wantEvs)
	if !slices.Equal(evs, wantEvs) {
		t.Errorf("events %v, want %v", evs, wantEvs)
	}
	// Nothing changes on a reconcile with the same desired sets.
	for e, desired := range m.last {
		for i, o := range desired {
			if id := m.objects[o.ID]; id != nil && o.Type == "identity" {
				desired[i] = identity(o.ID, id.hash)
			}
			if ap := m.objects[o.ID]; ap != nil && isContext(o.ID) {
				// A cluster's content is MISP's, the same in every event: the last one sent.
				var n int
				fmt.Sscanf(o.ID[strings.Index(o.ID, "--")+2:], "%d", &n)
				desired[i] = contextObject(n, ap.hash)
			}
		}
		got, err := s.Apply(sink, e, desired, now)
		if err != nil {
			t.Fatal(err)
		}
		if got.Enqueued() != 0 {
			t.Errorf("reconcile of %s queued %+v", e, got)
		}
	}
}
