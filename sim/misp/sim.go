package misp

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	mispmodel "github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/sim/loopback"
)

// DefaultKey is the API key the simulator accepts when Options.Key is empty: 40 alphanumeric
// characters, the only shape MISP accepts.
const DefaultKey = "SimulatorKey0000000000000000000000000001"

// DefaultVersion is the MISP version the simulator reports (the release the spec was read from).
const DefaultVersion = "2.5.1"

// Options configure a simulated MISP.
type Options struct {
	// Key is the accepted API key; DefaultKey when empty.
	Key string
	// Version is reported by /servers/getVersion; DefaultVersion when empty.
	Version string
	// Warninglist holds the values enforceWarninglist removes. For composite attributes
	// (domain|ip, ...) a hit on either component removes the attribute.
	Warninglist []string
	// TLS serves HTTPS with a self-signed certificate made at start (see CertificatePEM).
	TLS bool
	// Now is the clock used to stamp edits; time.Now when nil.
	Now func() time.Time
	// SearchLatency delays every restSearch answer as a real MISP's per-request work does
	// (access checks and warninglist matching per attribute); zero answers at once.
	SearchLatency SearchLatency
	// Sleep waits d or until ctx ends; a timer when nil. Tests inject one to see the delays.
	Sleep func(ctx context.Context, d time.Duration)
}

// SearchLatency is the time one restSearch answer takes: Fixed, plus PerEvent for each event
// returned, plus PerAttribute for each attribute returned (objects' included; none with
// metadata).
type SearchLatency struct {
	Fixed, PerEvent, PerAttribute time.Duration
}

// RealisticSearchLatency is the benchmarks' default MISP: 150 ms + 2 ms per event + 0.05 ms
// per attribute.
func RealisticSearchLatency() SearchLatency {
	return SearchLatency{Fixed: 150 * time.Millisecond, PerEvent: 2 * time.Millisecond, PerAttribute: 50 * time.Microsecond}
}

// For returns the delay of an answer carrying events events and attributes attributes.
func (l SearchLatency) For(events, attributes int) time.Duration {
	return l.Fixed + time.Duration(events)*l.PerEvent + time.Duration(attributes)*l.PerAttribute
}

// sleepContext waits d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// MISP is a simulated MISP instance. Its methods are safe for concurrent use.
type MISP struct {
	opts Options
	now  func() time.Time

	mu           sync.Mutex
	events       map[string]*event // by uuid
	nextEventID  int64
	nextAttrID   int64
	nextObjectID int64
	warninglist  map[string]bool
	faults       []*Fault
	latency      time.Duration
	requests     []Request
	served       atomic.Int64 // response body bytes written
	server       *loopback.Server
	// decaying models, by ascending id, and taxonomy numerical values (see decay.go)
	models    []mispmodel.DecayingModel
	tagValues map[string]float64
}

// New returns a simulator holding no events. Call Start to serve HTTP.
func New(opts Options) *MISP {
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepContext
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m := &MISP{
		opts: opts, now: now, events: map[string]*event{},
		nextEventID: 1, nextAttrID: 1, nextObjectID: 1,
		warninglist: map[string]bool{},
	}
	for _, v := range opts.Warninglist {
		m.warninglist[v] = true
	}
	return m
}

// Key returns the API key the simulator accepts.
func (m *MISP) Key() string { return m.opts.Key }

// Start serves the REST API on a loopback port (HTTPS when Options.TLS is set).
func (m *MISP) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server != nil {
		return
	}
	// Handshake failures are what TLS tests provoke on purpose; keep them out of test output.
	srv, err := loopback.Start(m.Handler(), loopback.Options{TLS: m.opts.TLS, ErrorLog: log.New(io.Discard, "", 0)})
	if err != nil {
		panic(fmt.Sprintf("sim misp: %v", err)) // only when loopback has no free port
	}
	m.server = srv
}

// URL returns the base URL of the running server ("" before Start).
func (m *MISP) URL() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server == nil {
		return ""
	}
	return m.server.URL
}

// Certificate returns the server's TLS certificate (nil unless started with TLS), for
// clients that want to trust it through a CA file.
func (m *MISP) Certificate() *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server == nil {
		return nil
	}
	return m.server.TLSCertificate()
}

// CertificatePEM returns the server's TLS certificate in PEM form (nil unless started with
// TLS), ready to be written to a CA file.
func (m *MISP) CertificatePEM() []byte {
	cert := m.Certificate()
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
}

// Client returns an *http.Client that trusts the server's certificate.
func (m *MISP) Client() *http.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.server == nil {
		return http.DefaultClient
	}
	return m.server.Client()
}

// Close stops the server. The events stay available.
func (m *MISP) Close() {
	m.mu.Lock()
	srv := m.server
	m.server = nil
	m.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Put stores an event given as MISP JSON ({"Event": {...}} or a bare event), replacing any
// event with the same uuid. Ids missing or "0" are assigned; timestamps are kept as given.
func (m *MISP) Put(data []byte) error {
	ev, err := parseEvent(data)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.insert(ev)
	return nil
}

// PutEvent stores a decoded event. Galaxies and fields the model does not carry are not
// reproduced; use Put with the original JSON when they matter.
func (m *MISP) PutEvent(e *mispmodel.Event) error {
	ev := fromModel(e)
	if ev.uuid == "" {
		return fmt.Errorf("put event: no uuid")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.insert(ev)
	return nil
}

// insert stores ev, assigning ids. m.mu must be held.
func (m *MISP) insert(ev *event) {
	if old, ok := m.events[ev.uuid]; ok && ev.id == 0 {
		ev.id = old.id
	}
	if ev.id == 0 {
		ev.id = m.nextEventID
	}
	m.nextEventID = max(m.nextEventID, ev.id+1)
	assign := func(a *attribute) {
		if a.id == 0 {
			a.id = m.nextAttrID
		}
		m.nextAttrID = max(m.nextAttrID, a.id+1)
	}
	for _, a := range ev.attrs {
		assign(a)
	}
	for _, o := range ev.objects {
		if o.id == 0 {
			o.id = m.nextObjectID
		}
		m.nextObjectID = max(m.nextObjectID, o.id+1)
		for _, a := range o.attrs {
			assign(a)
		}
	}
	m.events[ev.uuid] = ev
}

// Get returns the event as events/view returns it ({"Event": {...}}, all attributes).
func (m *MISP) Get(uuid string) ([]byte, bool) {
	m.mu.Lock()
	ev, ok := m.events[uuid]
	if !ok {
		m.mu.Unlock()
		return nil, false
	}
	ev = ev.clone()
	m.mu.Unlock()
	body, err := wrapEvent(ev, encodeOptions{})
	if err != nil {
		return nil, false
	}
	return body, true
}

// GetEvent returns the event decoded by package misp, as a client would see it.
func (m *MISP) GetEvent(uuid string) (*mispmodel.Event, bool) {
	body, ok := m.Get(uuid)
	if !ok {
		return nil, false
	}
	ev, err := mispmodel.DecodeEvent(body)
	if err != nil {
		return nil, false
	}
	return ev, true
}

// Delete removes an event (a hard delete: it disappears from every search).
func (m *MISP) Delete(uuid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.events[uuid]
	delete(m.events, uuid)
	return ok
}

// Events returns the uuids of all events in id order.
func (m *MISP) Events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.sortedEvents()
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.uuid
	}
	return out
}

// AttributeCount returns the number of attributes held, soft-deleted ones included.
func (m *MISP) AttributeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ev := range m.events {
		n += ev.attributeCount()
	}
	return n
}

func (m *MISP) sortedEvents() []*event {
	evs := make([]*event, 0, len(m.events))
	for _, ev := range m.events {
		evs = append(evs, ev)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].id < evs[j].id })
	return evs
}

// ---- edits: each bumps the attribute and event timestamps like MISP does ----

// stamp returns the timestamp for an edit of something last stamped at old: the clock's
// Unix seconds, but always later than old so incremental searches see every edit.
func (m *MISP) stamp(old int64) int64 {
	return max(m.now().Unix(), old+1)
}

// lookupAttribute finds an attribute for an edit, materializing generated ones. m.mu must be
// held.
func (m *MISP) lookupAttribute(eventUUID, attrUUID string) (*event, *attribute, error) {
	ev, ok := m.events[eventUUID]
	if !ok {
		return nil, nil, fmt.Errorf("event %s not found", eventUUID)
	}
	ev.materialize()
	a := ev.findAttribute(attrUUID)
	if a == nil {
		return nil, nil, fmt.Errorf("attribute %s not found in event %s", attrUUID, eventUUID)
	}
	return ev, a, nil
}

func (m *MISP) editAttribute(eventUUID, attrUUID string, fn func(a *attribute)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, a, err := m.lookupAttribute(eventUUID, attrUUID)
	if err != nil {
		return err
	}
	fn(a)
	a.timestamp = m.stamp(a.timestamp)
	m.touch(ev, a.timestamp)
	return nil
}

// touch records an edit of ev at ts: MISP raises the event timestamp and unpublishes it.
func (m *MISP) touch(ev *event, ts int64) {
	ev.timestamp = max(ts, m.stamp(ev.timestamp))
	ev.published = false
}

// SetToIDS sets an attribute's to_ids flag.
func (m *MISP) SetToIDS(eventUUID, attrUUID string, toIDs bool) error {
	return m.editAttribute(eventUUID, attrUUID, func(a *attribute) { a.toIDs = toIDs })
}

// SetValue changes an attribute's value.
func (m *MISP) SetValue(eventUUID, attrUUID, value string) error {
	return m.editAttribute(eventUUID, attrUUID, func(a *attribute) { a.value = value })
}

// AddAttribute adds a top-level attribute to an event and returns its new uuid.
func (m *MISP) AddAttribute(eventUUID, typ, category, value string, toIDs bool) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.events[eventUUID]
	if !ok {
		return "", fmt.Errorf("event %s not found", eventUUID)
	}
	ev.materialize()
	a := &attribute{
		id: m.nextAttrID, uuid: uuid.NewString(), typ: typ, category: category, value: value,
		distribution: "5", sharingGroupID: "0", toIDs: toIDs, timestamp: m.stamp(ev.timestamp),
	}
	m.nextAttrID++
	ev.attrs = append(ev.attrs, a)
	m.touch(ev, a.timestamp)
	return a.uuid, nil
}

// DeleteAttribute soft-deletes an attribute (deleted=true), as MISP's UI and API do.
func (m *MISP) DeleteAttribute(eventUUID, attrUUID string) error {
	return m.editAttribute(eventUUID, attrUUID, func(a *attribute) { a.deleted = true })
}

// AddEventTag attaches a tag to an event.
func (m *MISP) AddEventTag(eventUUID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.events[eventUUID]
	if !ok {
		return fmt.Errorf("event %s not found", eventUUID)
	}
	for _, t := range ev.tags {
		if t.name == name {
			return nil
		}
	}
	ev.tags = append(ev.tags, newTag(name))
	m.touch(ev, 0)
	return nil
}

// RemoveEventTag detaches a tag from an event.
func (m *MISP) RemoveEventTag(eventUUID, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.events[eventUUID]
	if !ok {
		return fmt.Errorf("event %s not found", eventUUID)
	}
	n := len(ev.tags)
	ev.tags = slices.DeleteFunc(ev.tags, func(t *tag) bool { return t.name == name })
	if len(ev.tags) == n {
		return fmt.Errorf("event %s has no tag %q", eventUUID, name)
	}
	m.touch(ev, 0)
	return nil
}

// Publish marks an event published now, as MISP's publish does after notifying.
func (m *MISP) Publish(eventUUID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.events[eventUUID]
	if !ok {
		return fmt.Errorf("event %s not found", eventUUID)
	}
	ev.published = true
	ev.publishTimestamp = m.stamp(ev.publishTimestamp)
	return nil
}

// newTag builds a tag in MISP's JSONConverter layout. Ids are derived from the name so the
// same tag has the same id everywhere.
func newTag(name string) *tag {
	colour := "#ffffff"
	var id uint32 = 2166136261
	for i := 0; i < len(name); i++ {
		id = (id ^ uint32(name[i])) * 16777619
	}
	raw, _ := marshalPHP(struct {
		ID             string  `json:"id"`
		Name           string  `json:"name"`
		Colour         string  `json:"colour"`
		Exportable     bool    `json:"exportable"`
		UserID         string  `json:"user_id"`
		HideTag        bool    `json:"hide_tag"`
		NumericalValue *string `json:"numerical_value"`
		IsGalaxy       bool    `json:"is_galaxy"`
		IsCustomGalaxy bool    `json:"is_custom_galaxy"`
		LocalOnly      bool    `json:"local_only"`
		Local          bool    `json:"local"`
		// RelationshipType is set by Event::__attachTags on every tag it writes (MISP 2.5).
		RelationshipType *string `json:"relationship_type"`
	}{ID: fmt.Sprint(id%100000 + 1), Name: name, Colour: colour, Exportable: true, UserID: "0"})
	return &tag{name: name, raw: raw}
}

// wrapEvent writes {"Event": {...}}.
func wrapEvent(ev *event, opt encodeOptions) ([]byte, error) {
	buf := append(make([]byte, 0, 1024), `{"Event":`...)
	buf, err := ev.appendJSON(buf, opt)
	if err != nil {
		return nil, err
	}
	return append(buf, '}'), nil
}
