package defender

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/internal/stixtest"
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/pusher"
	simdefender "github.com/mispsentinel/listener/sim/defender"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
	"github.com/mispsentinel/listener/store"
)

// pipeline is the path of a Defender sink without the daemon: conversion, mapping, the
// store's diff and outbox, and the tenant's budget.
type pipeline struct {
	t      *testing.T
	sim    *simdefender.Server
	st     *store.Store
	dir    string
	client *Client
	tenant *Tenant
	opts   TenantOptions
	mapOpt MapOptions
	now    time.Time
}

const sinkName = "mde"

func newPipeline(t *testing.T, simOpts simdefender.Options, topts TenantOptions, mapOpt MapOptions) *pipeline {
	t.Helper()
	p := &pipeline{t: t, dir: t.TempDir(), opts: topts, mapOpt: mapOpt, now: mapNow}
	clock := func() time.Time { return p.now }
	p.opts.Now = clock
	simOpts.Now = clock // expiry is judged on the test's clock
	p.sim = startSim(t, simOpts)
	p.client = newClient(t, p.sim, "")
	p.open()
	return p
}

func (p *pipeline) open() {
	p.t.Helper()
	st, err := store.Open(p.dir, store.Options{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.st = st
	p.t.Cleanup(func() { _ = st.Close() })
	if p.tenant, err = NewTenant(p.client, st, "defender/"+p.sim.Entra.TenantID(), p.opts); err != nil {
		p.t.Fatal(err)
	}
}

// restart closes the store and loads the tenant again from it.
func (p *pipeline) restart() {
	p.t.Helper()
	if err := p.st.Close(); err != nil {
		p.t.Fatal(err)
	}
	p.open()
}

// publish converts ev for the sink, diffs it in the store and delivers the outbox.
func (p *pipeline) publish(ev *misp.Event) []store.DeadLetter {
	p.t.Helper()
	res := stix.Convert(ev, stixtest.Options(), p.now)
	cands, _ := Map(ev, res, p.mapOpt)
	objs := make([]stix.Object, len(cands))
	for i, c := range cands {
		objs[i] = c.Object
	}
	if _, err := p.st.Apply(sinkName, ev.UUID, objs, p.now); err != nil {
		p.t.Fatal(err)
	}
	return p.drain()
}

// drain delivers the sink's outbox through the pusher (the one delivery loop) and returns
// the dead letters it added.
func (p *pipeline) drain() []store.DeadLetter {
	p.t.Helper()
	before, err := p.st.DeadLetters(sinkName, 1000)
	if err != nil {
		p.t.Fatal(err)
	}
	pacers, err := pusher.NewPacers(0)
	if err != nil {
		p.t.Fatal(err)
	}
	sink := NewSink(sinkName, p.tenant, MaxImportBatch, WriteQuota(p.client.Identity().String(), time.Minute))
	pu, err := pusher.New(pusher.Config{Sink: sinkName, Linger: time.Millisecond, ShutdownGrace: time.Second, RetryInitial: time.Millisecond,
		RetryMax: 10 * time.Millisecond, MaxRetryAfter: time.Second, InFlight: 4, FailingInitial: time.Minute, FailingMax: time.Minute}, p.st, sink, pacers, quietLogger(), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := pu.Drain(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	after, err := p.st.DeadLetters(sinkName, 1000)
	if err != nil {
		p.t.Fatal(err)
	}
	return after[len(before):]
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// held returns what MDE holds as "type action value", sorted.
func (p *pipeline) held() []string {
	var out []string
	for _, ind := range p.sim.Indicators() {
		out = append(out, ind.IndicatorType+" "+ind.Action+" "+ind.IndicatorValue)
	}
	slices.Sort(out)
	return out
}

func eventWith(n int, threat string, attrs ...misp.Attribute) *misp.Event {
	for i := range attrs {
		attrs[i].UUID = fmt.Sprintf("5b0e3c1a-%04d-4000-8000-%012d", n, i+1)
		attrs[i].ToIDS = true
		if attrs[i].Timestamp.IsZero() {
			attrs[i].Timestamp = mapNow.Add(-time.Hour)
		}
	}
	return &misp.Event{ID: fmt.Sprint(n), UUID: fmt.Sprintf("0d6b1a52-%04d-4222-8333-444455556666", n), Info: fmt.Sprintf("event %d", n),
		ThreatLevelID: threat, Timestamp: mapNow, Attributes: attrs}
}

func defaultTenant(budget int) TenantOptions {
	return TenantOptions{Budget: budget, Margin: 0.02, Weights: ScoreWeights{Confidence: 0.4, Decay: 0.2, Recency: 0.2, ThreatLevel: 0.2, RecencyHalfLife: 30 * 24 * time.Hour}}
}

func TestAcceptanceThreeEventsDeletionAndActionChange(t *testing.T) {
	mapOpt := MapOptions{Action: ActionBlock, ActionByType: map[Type]Action{TypeFileSha256: ActionBlockAndRemediate, TypeCertificateThumbprint: ActionBlockAndRemediate}, Application: "MISP", MISPURL: "https://misp.example"}
	p := newPipeline(t, simdefender.Options{}, defaultTenant(100), mapOpt)
	ev1 := eventWith(1, "1", a("domain", "evil.example"), a("ip-dst", "198.51.100.23"), a("email-src", "x@example.org"))
	ev2 := eventWith(2, "2", a("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), a("url", "http://evil.example/a"))
	ev3 := eventWith(3, "3", a("ip-src", "10.0.0.1"), a("hostname", "c2.example.net"))
	for _, ev := range []*misp.Event{ev1, ev2, ev3} {
		if dead := p.publish(ev); len(dead) != 0 {
			t.Fatalf("dead letters %v", dead)
		}
	}
	want := []string{
		"DomainName Block c2.example.net", "DomainName Block evil.example",
		"FileSha256 BlockAndRemediate e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"IpAddress Block 198.51.100.23", "Url Block http://evil.example/a",
	}
	if got := p.held(); !slices.Equal(got, want) {
		t.Fatalf("MDE holds %v, want %v", got, want)
	}
	for _, ind := range p.sim.Indicators() {
		if ind.CreatedBy != simsentinel.DefaultClientID || ind.Application != "MISP" || ind.ExpirationTime == "" {
			t.Errorf("indicator %+v", ind)
		}
	}

	// Deleting an attribute deletes it on MDE.
	ev1.Attributes = ev1.Attributes[:1]
	p.publish(ev1)
	want = slices.DeleteFunc(want, func(s string) bool { return s == "IpAddress Block 198.51.100.23" })
	if got := p.held(); !slices.Equal(got, want) {
		t.Fatalf("after deleting the IP attribute MDE holds %v, want %v", got, want)
	}

	// Changing the sink's action replaces the old indicators (MDE would keep both).
	p.mapOpt.Action = ActionAudit
	for _, ev := range []*misp.Event{ev1, ev2, ev3} {
		p.publish(ev)
	}
	got := p.held()
	if len(got) != len(want) {
		t.Fatalf("after the action change MDE holds %v", got)
	}
	for _, g := range got {
		if !slices.Contains([]string{"Audit", "BlockAndRemediate"}, fieldOf(g, 1)) {
			t.Errorf("old action left in MDE: %s", g)
		}
	}
	// Deleting the event revokes everything it gave.
	if _, err := p.st.RemoveEvent(sinkName, ev2.UUID, p.now); err != nil {
		t.Fatal(err)
	}
	p.drain()
	if got := p.held(); len(got) != 2 {
		t.Errorf("after the event's deletion MDE holds %v", got)
	}
	if s := p.sim.Stats(); s.CapRefusals != 0 || s.ItemFailures != 0 {
		t.Errorf("sim stats %+v", s)
	}
}

func fieldOf(s string, i int) string {
	var f []string
	start := 0
	for j := 0; j <= len(s); j++ {
		if j == len(s) || s[j] == ' ' {
			f = append(f, s[start:j])
			start = j + 1
		}
	}
	return f[i]
}

// eightyCandidates returns one event with 80 domains whose attribute timestamps are a day
// apart: each has its own recency, so the scores are distinct.
func eightyCandidates() *misp.Event {
	var attrs []misp.Attribute
	for i := range 80 {
		at := a("domain", fmt.Sprintf("d%02d.example", i))
		at.Timestamp = mapNow.Add(-time.Duration(i+1) * 24 * time.Hour)
		attrs = append(attrs, at)
	}
	return eventWith(7, "2", attrs...)
}

func TestAcceptanceBudgetOfFiftyWithEightyCandidates(t *testing.T) {
	topts := defaultTenant(50)
	topts.Margin = 0.001
	// Other tools hold all but 50 of the tenant's 15,000 slots: read-back must leave the
	// listener exactly 50, and the cap error must never come back.
	p := newPipeline(t, simdefender.Options{}, topts, MapOptions{Action: ActionBlock})
	var portal []simdefender.Indicator
	for i := range TenantCap - 50 {
		portal = append(portal, simdefender.Indicator{IndicatorValue: fmt.Sprintf("portal%d.example", i), IndicatorType: "DomainName", Action: "Allowed", Title: "p", Description: "p"})
	}
	p.sim.Seed("analyst@example.org", portal...)
	p.tenant.opts.Budget = 60 // more than the tenant has left: read-back must lower it to 50
	if err := p.tenant.ReadBack(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := eightyCandidates()
	p.publish(ev)

	// The 50 best by the documented score: the 50 most recent.
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("DomainName Block d%02d.example", i))
	}
	sort.Strings(want)
	mine := func() []string {
		return slices.DeleteFunc(p.held(), func(s string) bool { return fieldOf(s, 1) == "Allowed" })
	}
	if got := mine(); !slices.Equal(got, want) {
		t.Fatalf("MDE holds %d of ours: %v\nwant %v", len(got), got, want)
	}
	st := p.tenant.Standing(sinkName, stix.GenerationID(stixIDOf(t, ev, "d79.example"), 0))
	if st.Held || st.Worst == "" {
		t.Errorf("standing of the worst candidate: %s", st)
	}
	t.Logf("standing of d79: %s", st)

	// A better candidate swaps exactly one.
	before := p.sim.Stats()
	better := a("domain", "fresh.example")
	better.Timestamp = mapNow
	ev.Attributes = append(ev.Attributes, better)
	ev.Attributes[80].UUID = "5b0e3c1a-0007-4000-8000-000000000999"
	ev.Attributes[80].ToIDS = true
	p.publish(ev)
	after := p.sim.Stats()
	if after.Imports-before.Imports != 1 || after.BatchDeletes-before.BatchDeletes != 1 {
		t.Errorf("the swap took %d imports and %d batch deletes, want 1 and 1", after.Imports-before.Imports, after.BatchDeletes-before.BatchDeletes)
	}
	got := mine()
	if len(got) != 50 || !slices.Contains(got, "DomainName Block fresh.example") || slices.Contains(got, "DomainName Block d49.example") {
		t.Errorf("after the swap MDE holds %v", got)
	}

	// A restart changes nothing: same held set, no MDE write.
	heldBefore := p.tenant.Held()
	p.restart()
	if !slices.Equal(p.tenant.Held(), heldBefore) {
		t.Error("the restart changed the held set")
	}
	p.publish(ev) // the same event again: nothing changed
	if err := p.tenant.ReadBack(context.Background()); err != nil {
		t.Fatal(err)
	}
	end := p.sim.Stats()
	if end.Imports != after.Imports || end.BatchDeletes != after.BatchDeletes {
		t.Errorf("after the restart: %d imports and %d batch deletes more", end.Imports-after.Imports, end.BatchDeletes-after.BatchDeletes)
	}
	if end.CapRefusals != 0 {
		t.Errorf("MDE refused %d indicators for the cap", end.CapRefusals)
	}

	// A revocation frees its slot at once for the best waiting candidate.
	ev.Attributes = ev.Attributes[1:] // d00 deleted in MISP
	p.publish(ev)
	got = mine()
	if len(got) != 50 || slices.Contains(got, "DomainName Block d00.example") || !slices.Contains(got, "DomainName Block d49.example") {
		t.Errorf("after revoking d00 MDE holds %v", got)
	}
}

func stixIDOf(t *testing.T, ev *misp.Event, value string) string {
	t.Helper()
	for _, d := range stix.Convert(ev, stixtest.Options(), mapNow).Decisions {
		if d.Value == value && len(d.Exported) == 1 {
			return d.Exported[0]
		}
	}
	t.Fatalf("%s not exported", value)
	return ""
}

func TestAcceptanceRefusedIndicatorIsDeadLetteredWithDefendersReason(t *testing.T) {
	// MDE refuses a URL with a space, which MISP and the mapping let through.
	p := newPipeline(t, simdefender.Options{}, defaultTenant(10), MapOptions{Action: ActionBlock})
	ev := eventWith(9, "1", a("domain", "ok.example"), a("url", "http://ok.example/x y"))
	if dead := p.publish(ev); len(dead) != 1 {
		t.Fatalf("dead letters %v, want the URL's", dead)
	}
	dead, err := p.st.DeadLetters(sinkName, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || !strings.Contains(dead[0].Message, "InvalidUrl") {
		t.Fatalf("dead letters %+v, want the URL with MDE's reason", dead)
	}
	if got := p.held(); !slices.Equal(got, []string{"DomainName Block ok.example"}) {
		t.Errorf("MDE holds %v", got)
	}
	if st := p.tenant.Standing(sinkName, dead[0].ID); st.Refused == "" {
		t.Errorf("standing of the refused URL: %s", st)
	}
}

func TestAcceptanceExpiredIndicatorFreesItsSlotAtReadBack(t *testing.T) {
	p := newPipeline(t, simdefender.Options{}, defaultTenant(1), MapOptions{Action: ActionBlock})
	soon := p.now.Add(time.Hour)
	first := p.now.Add(-2 * time.Hour)
	short := a("domain", "short-lived.example")
	short.FirstSeen, short.LastSeen = &first, &soon
	short.Timestamp = p.now // the most recent: it takes the one slot
	long := a("domain", "long-lived.example")
	long.Timestamp = p.now.Add(-48 * time.Hour)
	p.publish(eventWith(11, "1", short, long))
	if got := p.held(); !slices.Equal(got, []string{"DomainName Block short-lived.example"}) {
		t.Fatalf("MDE holds %v", got)
	}
	p.now = p.now.Add(2 * time.Hour) // MDE deletes the expired indicator itself
	if err := p.tenant.ReadBack(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.held(); !slices.Equal(got, []string{"DomainName Block long-lived.example"}) {
		t.Errorf("after the expiry and a read-back MDE holds %v, want the waiting candidate", got)
	}
	if s := p.tenant.Summary(); s.Held != 1 || s.InDefender != 1 || s.Waiting != 0 {
		t.Errorf("summary %+v", s)
	}
}
