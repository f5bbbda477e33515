package defender

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mispsentinel/listener/pusher"
)

// RecordStore persists a tenant's budget (package store implements it).
type RecordStore interface {
	PutSinkRecords(scope string, puts map[string][]byte, deletes []string) error
	SinkRecords(scope string, fn func(key string, value []byte) error) error
}

// TenantOptions configure a Tenant; the daemon fills them from config/defaults.go.
type TenantOptions struct {
	// Budget is the most indicators the listener keeps in the tenant (at most TenantCap;
	// the default leaves headroom for other tools). Read-back lowers the slots further when
	// other tools hold more than TenantCap − Budget.
	Budget int
	// Margin is the hysteresis of swaps (see Budget).
	Margin  float64
	Weights ScoreWeights
	// MaxDefer is how long Apply may put MDE calls off while a backlog is being drained
	// (Apply's backlog argument), so that a large initial load is ranked before anything is
	// imported; 0 never defers.
	MaxDefer time.Duration
	// Now is the clock of the recency term and of MaxDefer; default time.Now.
	Now func() time.Time
}

// Tenant is the ranked budget of one MDE tenant, shared by every Defender sink of the tenant
// (the cap belongs to the tenant). It keeps each candidate's owners (sink and STIX id), its
// MDE id and whether it holds a slot, decides with a Budget which candidates MDE should hold,
// makes MDE hold exactly those (BatchDelete before import), and persists its state after
// every change. It is safe for concurrent use; calls are serialised per tenant.
type Tenant struct {
	client *Client
	rs     RecordStore
	scope  string
	opts   TenantOptions

	mu      sync.Mutex
	budget  *Budget
	cands   map[string]*candidate // by MDE key
	owners  map[string]string     // owner → MDE key
	pending map[string]bool       // keys whose MDE state may differ from the decision
	dirty   map[string]bool       // keys whose record must be written
	foreign int                   // indicators other tools hold (last read-back)
	synced  time.Time             // when MDE was last brought in line
	stats   TenantStats
}

// TenantStats count the MDE calls and outcomes of a tenant.
type TenantStats struct {
	ImportCalls, DeleteCalls, Imported, Deleted, Rejected, CapRefusals int
}

// candidate is one MDE indicator (type, value, action) the listener may hold.
type candidate struct {
	Key string `json:"key"`
	// Owners are the sinks' envelopes for it, by owner (sink NUL STIX id).
	Owners map[string]Envelope `json:"owners"`
	Score  float64             `json:"score"`
	Held   bool                `json:"held"`
	MDEID  string              `json:"mde_id,omitempty"`
	// Sent is the digest of the indicator MDE holds under MDEID ("" when it holds none or
	// must be sent again).
	Sent string `json:"sent,omitempty"`
	// Refused is MDE's reason when it refused the indicator; the candidate then waits for a
	// new version from its owners.
	Refused string `json:"refused,omitempty"`
}

func (c *candidate) gone() bool { return len(c.Owners) == 0 }

// best returns the envelope MDE should hold: the highest-ranked owner's.
func (c *candidate) best() (Envelope, string) {
	owners := make([]string, 0, len(c.Owners))
	for o := range c.Owners {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	return c.Owners[owners[0]], owners[0]
}

// expired reports whether the indicator MDE would hold has passed its expirationTime.
func (c *candidate) expired(now time.Time) bool {
	env, _ := c.best()
	exp, err := time.Parse(time.RFC3339, env.Indicator.ExpirationTime)
	return err == nil && !now.Before(exp)
}

func (c *candidate) digest() string {
	env, _ := c.best()
	b, _ := json.Marshal(env.Indicator.request())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func keyString(k Key) string { return string(k.Type) + "|" + string(k.Action) + "|" + k.Value }

func ownerOf(sink, id string) string { return sink + "\x00" + id }

// NewTenant loads the tenant's persisted state (scope names it in rs) and returns it. The
// held set is restored as it was: nothing is sent until Apply or ReadBack.
func NewTenant(client *Client, rs RecordStore, scope string, opts TenantOptions) (*Tenant, error) {
	if opts.Budget < 0 || opts.Budget > TenantCap {
		return nil, fmt.Errorf("defender budget %d must be within 0..%d", opts.Budget, TenantCap)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tenant{client: client, rs: rs, scope: scope, opts: opts, budget: NewBudget(opts.Budget, opts.Margin),
		cands: map[string]*candidate{}, owners: map[string]string{}, pending: map[string]bool{}, dirty: map[string]bool{}}
	var entries []Entry
	err := rs.SinkRecords(scope, func(key string, value []byte) error {
		var c candidate
		if err := json.Unmarshal(value, &c); err != nil {
			return fmt.Errorf("decode budget record %q: %w", key, err)
		}
		if c.Owners == nil {
			c.Owners = map[string]Envelope{}
		}
		t.cands[key] = &c
		for o := range c.Owners {
			t.owners[o] = key
		}
		if !c.gone() && c.Refused == "" {
			entries = append(entries, Entry{Key: key, Score: c.Score, Held: c.Held})
		}
		if t.needsWork(&c) {
			t.pending[key] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load defender budget %s: %w", scope, err)
	}
	t.budget.Restore(entries)
	t.applyChanges(t.budget.Rebalance())
	return t, nil
}

// needsWork reports whether MDE's state of c differs from the decision.
func (t *Tenant) needsWork(c *candidate) bool {
	holds := c.Held && !c.gone() && c.Refused == ""
	return (holds && c.Sent != c.digest()) || (!holds && c.MDEID != "") || (c.gone() && c.MDEID == "")
}

func (t *Tenant) applyChanges(changes []Change) {
	for _, ch := range changes {
		if c := t.cands[ch.Key]; c != nil {
			c.Held = ch.Hold
			t.pending[ch.Key], t.dirty[ch.Key] = true, true
		}
	}
}

func (t *Tenant) rescore(key string) {
	c := t.cands[key]
	best := -1.0
	for _, env := range c.Owners {
		best = max(best, Score(env.Rank, t.opts.Weights, t.opts.Now()))
	}
	if c.Refused != "" {
		return
	}
	c.Score = best
	t.applyChanges(t.budget.Set(key, c.Score))
	t.pending[key], t.dirty[key] = true, true
}

func (t *Tenant) dropOwner(owner string) {
	key, ok := t.owners[owner]
	if !ok {
		return
	}
	delete(t.owners, owner)
	c := t.cands[key]
	delete(c.Owners, owner)
	t.pending[key], t.dirty[key] = true, true
	if c.gone() {
		c.Held = false
		t.applyChanges(t.budget.Remove(key))
		return
	}
	t.rescore(key)
}

// Apply takes a batch of one sink's upserts and revocations, updates the budget and makes
// MDE hold what it decides, calling pace (nil: none) before every MDE call. It returns the
// objects MDE refused (with MDE's reason), or a *pusher.RetryError / *pusher.FatalError /
// context error from the client (the decisions made so far are kept and persisted; MDE is
// brought in line on the next call). With backlog true (more is queued behind this batch)
// the MDE calls are put off for up to MaxDefer: the decisions are durable, and the next call
// brings MDE in line with all of them at once.
func (t *Tenant) Apply(ctx context.Context, sink string, batch []pusher.Object, backlog bool, pace pusher.Pace) ([]pusher.Rejection, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	origin := map[string][]int{}
	var rejected []pusher.Rejection
	for i, o := range batch {
		owner := ownerOf(sink, o.ID)
		if o.Revoke {
			t.dropOwner(owner)
			continue
		}
		env, _, _, err := DecodeEnvelope(o.Body)
		if err != nil || env.Indicator.IndicatorValue == "" {
			rejected = append(rejected, pusher.Rejection{Index: i, Message: fmt.Sprintf("not a Defender candidate: %v", err)})
			continue
		}
		key := keyString(KeyOf(env.Indicator))
		if old, ok := t.owners[owner]; ok && old != key {
			t.dropOwner(owner) // new value or action: the old MDE indicator goes
		}
		c := t.cands[key]
		if c == nil {
			c = &candidate{Key: key, Owners: map[string]Envelope{}}
			t.cands[key] = c
		}
		c.Owners[owner] = env
		c.Refused = ""
		t.owners[owner] = key
		origin[key] = append(origin[key], i)
		t.rescore(key)
	}
	var refusedNow map[string]string
	var err error
	if now := t.opts.Now(); !backlog || t.opts.MaxDefer <= 0 || now.Sub(t.synced) >= t.opts.MaxDefer {
		refusedNow, err = t.sync(ctx, pace)
		if err == nil {
			t.synced = now
		}
	}
	for key, reason := range refusedNow {
		for _, i := range origin[key] {
			rejected = append(rejected, pusher.Rejection{Index: i, Message: reason})
		}
	}
	if perr := t.persist(); perr != nil && err == nil {
		err = perr
	}
	sort.Slice(rejected, func(a, b int) bool { return rejected[a].Index < rejected[b].Index })
	if err != nil {
		return nil, err
	}
	return rejected, nil
}

// sync makes MDE hold exactly the held candidates: deletes first (they free slots), then
// imports. It returns MDE's reasons for candidates it refused.
func (t *Tenant) sync(ctx context.Context, pace pusher.Pace) (map[string]string, error) {
	refused := map[string]string{}
	for round := 0; round < 4 && len(t.pending) > 0; round++ {
		var deletes, imports []string
		for key := range t.pending {
			c := t.cands[key]
			switch {
			case c == nil:
				delete(t.pending, key)
			case c.MDEID != "" && (!c.Held || c.gone() || c.Refused != ""):
				deletes = append(deletes, key)
			case c.Held && !c.gone() && c.Refused == "" && c.Sent != c.digest():
				imports = append(imports, key)
			default:
				delete(t.pending, key)
				if c.gone() && c.MDEID == "" {
					delete(t.cands, key)
					t.dirty[key] = true
				}
			}
		}
		if len(deletes)+len(imports) == 0 {
			break
		}
		slices.Sort(deletes)
		slices.Sort(imports)
		if err := t.deleteAll(ctx, deletes, pace); err != nil {
			return refused, err
		}
		if err := t.importAll(ctx, imports, refused, pace); err != nil {
			return refused, err
		}
	}
	return refused, nil
}

// paced calls pace, when set, before one MDE call.
func paced(ctx context.Context, pace pusher.Pace) error {
	if pace == nil {
		return nil
	}
	return pace(ctx)
}

func (t *Tenant) deleteAll(ctx context.Context, keys []string, pace pusher.Pace) error {
	for start := 0; start < len(keys); start += t.client.BatchSize() {
		part := keys[start:min(start+t.client.BatchSize(), len(keys))]
		ids := make([]string, len(part))
		for i, k := range part {
			ids[i] = t.cands[k].MDEID
		}
		if err := paced(ctx, pace); err != nil {
			return err
		}
		t.stats.DeleteCalls++
		res, err := t.client.BatchDelete(ctx, ids)
		if err != nil {
			return err
		}
		for i, k := range part {
			c := t.cands[k]
			if res[i].Failed {
				// Not an id MDE can know: forget it (read-back deletes what is left).
				c.Refused = res[i].Reason
			}
			c.MDEID, c.Sent = "", ""
			t.stats.Deleted++
			t.dirty[k] = true
		}
	}
	return nil
}

func (t *Tenant) importAll(ctx context.Context, keys []string, refused map[string]string, pace pusher.Pace) error {
	for start := 0; start < len(keys); start += t.client.BatchSize() {
		part := keys[start:min(start+t.client.BatchSize(), len(keys))]
		inds := make([]Indicator, len(part))
		for i, k := range part {
			env, _ := t.cands[k].best()
			inds[i] = env.Indicator
		}
		if err := paced(ctx, pace); err != nil {
			return err
		}
		t.stats.ImportCalls++
		res, err := t.client.Import(ctx, inds)
		var capErr *CapError
		if errors.As(err, &capErr) {
			res = make([]ItemResult, len(part))
			for i := range res {
				res[i] = ItemResult{Failed: true, CapReached: true, Reason: capErr.Message}
			}
		} else if err != nil {
			return err
		}
		capHit := false
		for i, k := range part {
			c, r := t.cands[k], res[i]
			t.dirty[k] = true
			switch {
			case r.Unanswered:
				// stays pending: sent again in the next round or call
			case r.CapReached:
				capHit = true
				t.stats.CapRefusals++
			case r.Failed:
				t.stats.Rejected++
				c.Refused, c.Held = r.Reason, false
				refused[k] = r.Reason
				t.applyChanges(t.budget.Remove(k))
			default:
				t.stats.Imported++
				c.MDEID, c.Sent = r.ID, c.digest()
			}
		}
		if capHit {
			// Other tools hold more than read-back counted: keep what MDE holds, release the
			// rest until the next read-back finds room.
			inMDE := 0
			for _, c := range t.cands {
				if c.Held && c.MDEID != "" {
					inMDE++
				}
			}
			t.applyChanges(t.budget.SetCapacity(inMDE))
		}
	}
	return nil
}

func (t *Tenant) persist() error {
	if len(t.dirty) == 0 {
		return nil
	}
	puts := map[string][]byte{}
	var deletes []string
	for key := range t.dirty {
		c, ok := t.cands[key]
		if !ok {
			deletes = append(deletes, key)
			continue
		}
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode budget record %q: %w", key, err)
		}
		puts[key] = b
	}
	if err := t.rs.PutSinkRecords(t.scope, puts, deletes); err != nil {
		return fmt.Errorf("persist defender budget %s: %w", t.scope, err)
	}
	clear(t.dirty)
	return nil
}

// ReadBack lists the tenant's indicators, counts those other tools hold (the slots left are
// TenantCap minus them, at most Budget), re-sends held indicators MDE lost, deletes the
// listener's own indicators it no longer wants, and brings MDE in line.
func (t *Tenant) ReadBack(ctx context.Context) error {
	all, err := t.client.List(ctx, "", MaxListPage)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	own := strings.ToLower(t.client.Identity().ClientID)
	byID := map[string]Indicator{}
	foreign := 0
	for _, ind := range all {
		if strings.ToLower(ind.CreatedBy) == own {
			byID[ind.ID] = ind
		} else {
			foreign++
		}
	}
	t.foreign = foreign
	known := map[string]bool{}
	now := t.opts.Now()
	for key, c := range t.cands {
		if c.MDEID == "" {
			continue
		}
		if _, ok := byID[c.MDEID]; !ok {
			// Expired (MDE deleted it at its expirationTime: its slot is free) or deleted
			// outside the listener (sent again).
			c.MDEID, c.Sent = "", ""
			t.pending[key], t.dirty[key] = true, true
			if !c.gone() && c.expired(now) {
				for o := range c.Owners {
					delete(t.owners, o)
				}
				clear(c.Owners)
				c.Held = false
				t.applyChanges(t.budget.Remove(key))
			}
			continue
		}
		known[c.MDEID] = true
	}
	var orphans []string
	for id := range byID {
		if !known[id] {
			orphans = append(orphans, id)
		}
	}
	slices.Sort(orphans)
	for start := 0; start < len(orphans); start += t.client.BatchSize() {
		t.stats.DeleteCalls++
		if _, err := t.client.BatchDelete(ctx, orphans[start:min(start+t.client.BatchSize(), len(orphans))]); err != nil {
			return err
		}
	}
	t.applyChanges(t.budget.SetCapacity(min(t.opts.Budget, max(TenantCap-foreign, 0))))
	_, err = t.sync(ctx, nil)
	if perr := t.persist(); perr != nil && err == nil {
		err = perr
	}
	return err
}

// Stats returns the tenant's counters.
func (t *Tenant) Stats() TenantStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Held returns the MDE keys of the candidates holding a slot, sorted.
func (t *Tenant) Held() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, c := range t.cands {
		if c.Held {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// SlotStanding explains where sink's indicator id stands in the tenant's budget.
type SlotStanding struct {
	Standing
	// Key is the MDE identity (type|action|value); MDEID the indicator's id in MDE ("" when
	// MDE does not hold it); Refused MDE's reason when it refused it.
	Key, MDEID, Refused string
}

func (s SlotStanding) String() string {
	switch {
	case s.Key == "":
		return "not a Defender candidate (filtered, unsupported by Defender, or revoked)"
	case s.Refused != "":
		return fmt.Sprintf("%s: refused by Defender: %s", s.Key, s.Refused)
	case s.Held && s.MDEID == "":
		return fmt.Sprintf("%s %s; not yet in Defender", s.Key, s.Standing)
	case s.Held:
		return fmt.Sprintf("%s %s; Defender id %s", s.Key, s.Standing, s.MDEID)
	}
	return s.Key + " " + s.Standing.String()
}

// Standing returns the standing of sink's indicator id (its STIX id).
func (t *Tenant) Standing(sink, id string) SlotStanding {
	t.mu.Lock()
	defer t.mu.Unlock()
	key, ok := t.owners[ownerOf(sink, id)]
	if !ok {
		return SlotStanding{}
	}
	c := t.cands[key]
	return SlotStanding{Standing: t.budget.Standing(key), Key: key, MDEID: c.MDEID, Refused: c.Refused}
}

// Sink is one Defender sink: the pusher's Sink for the sink's outbox, delivering into the
// tenant's budget. Several sinks of one tenant share its Tenant.
type Sink struct {
	name   string
	tenant *Tenant
	limits pusher.Limits
}

// WriteQuota is the pusher's quota of a Defender identity's writes: imports and BatchDelete
// share MDE's 30 calls a minute (the client also paces each call type on its own).
func WriteQuota(id string, minute time.Duration) pusher.Quota {
	return pusher.Quota{Key: "defender:" + id + ":write", Requests: 30, Per: minute}
}

// NewSink returns the sink name of tenant, taking batches of at most batchSize objects and
// pacing its calls with quota.
func NewSink(name string, tenant *Tenant, batchSize int, quota pusher.Quota) *Sink {
	return &Sink{name: name, tenant: tenant, limits: pusher.Limits{MaxBatch: batchSize, Upserts: []pusher.Quota{quota}}}
}

// Tenant returns the sink's tenant.
func (s *Sink) Tenant() *Tenant { return s.tenant }

// Limits implements pusher.Sink. Revocations travel in the same batches as upserts: the
// tenant turns them into BatchDelete calls.
func (s *Sink) Limits() pusher.Limits { return s.limits }

// Send implements pusher.Sink. A full batch means a backlog: its MDE calls may be deferred
// (TenantOptions.MaxDefer) so that a large load is ranked before anything is imported.
func (s *Sink) Send(ctx context.Context, batch []pusher.Object, pace pusher.Pace) ([]pusher.Rejection, error) {
	return s.tenant.Apply(ctx, s.name, batch, len(batch) >= s.limits.MaxBatch, pace)
}

// BudgetSummary is a tenant budget's state for `status`.
type BudgetSummary struct {
	// Capacity is the number of slots (the configured budget, lowered by read-back).
	Capacity int `json:"capacity"`
	// Held candidates hold a slot; InDefender of them MDE holds already.
	Held       int `json:"held"`
	InDefender int `json:"in_defender"`
	// Waiting candidates are outranked; Refused ones MDE refused.
	Waiting int `json:"waiting"`
	Refused int `json:"refused"`
	// Foreign is the number of indicators other tools hold (last read-back).
	Foreign int `json:"foreign"`
}

// Summary returns the budget's state.
func (t *Tenant) Summary() BudgetSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := BudgetSummary{Capacity: t.budget.Capacity(), Foreign: t.foreign}
	for _, c := range t.cands {
		switch {
		case c.gone():
		case c.Refused != "":
			s.Refused++
		case c.Held:
			s.Held++
			if c.MDEID != "" {
				s.InDefender++
			}
		default:
			s.Waiting++
		}
	}
	return s
}
