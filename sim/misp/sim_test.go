package misp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/sharedref"
	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// fixedClock is an injected clock the tests move by hand.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

const (
	evA = "aaaaaaaa-0000-4000-8000-000000000001"
	evB = "bbbbbbbb-0000-4000-8000-000000000002"
	evC = "cccccccc-0000-4000-8000-000000000003"
)

// filterFixture holds three events:
//
//	A: published, ts 1000, pts 1100, event tags tlp:green + workflow complete; ip 8.8.8.8 (to_ids),
//	   domain evil.example (to_ids false), soft-deleted md5
//	B: published, ts 2000, pts 2100, event tag tlp:red; attribute tagged kill-chain:Delivery
//	C: unpublished, ts 3000, no tags; one sha256 in an object
const filterFixture = `[
{"Event":{"id":"1","uuid":"` + evA + `","info":"A","published":true,"timestamp":"1000","publish_timestamp":"1100",
 "Tag":[{"id":"1","name":"tlp:green"},{"id":"2","name":"workflow:state=\"complete\""}],
 "Attribute":[
  {"id":"11","uuid":"a1000000-0000-4000-8000-000000000000","type":"ip-dst","value":"8.8.8.8","to_ids":true,"timestamp":"1000"},
  {"id":"12","uuid":"a2000000-0000-4000-8000-000000000000","type":"domain","value":"evil.example","to_ids":false,"timestamp":"1000"},
  {"id":"13","uuid":"a3000000-0000-4000-8000-000000000000","type":"md5","value":"d41d8cd98f00b204e9800998ecf8427e","to_ids":true,"deleted":true,"timestamp":"1000"}]}},
{"Event":{"id":"2","uuid":"` + evB + `","info":"B","published":"1","timestamp":2000,"publish_timestamp":"2100",
 "Tag":[{"id":"3","name":"tlp:red"}],
 "Attribute":[
  {"id":"21","uuid":"b1000000-0000-4000-8000-000000000000","type":"url","value":"https://evil.example/x","to_ids":"1","timestamp":"2000",
   "Tag":[{"id":"4","name":"kill-chain:Delivery"}]}]}},
{"Event":{"id":"3","uuid":"` + evC + `","info":"C","published":false,"timestamp":"3000","publish_timestamp":"0",
 "Object":[{"id":"1","name":"file","uuid":"c0000000-0000-4000-8000-000000000000","timestamp":"3000","Attribute":[
  {"id":"31","uuid":"c1000000-0000-4000-8000-000000000000","type":"sha256","object_relation":"sha256",
   "value":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","to_ids":true,"timestamp":"3000"}]}]}}
]`

func newFixtureSim(t *testing.T, clock *fixedClock) *simmisp.MISP {
	t.Helper()
	sim := simmisp.New(simmisp.Options{Warninglist: []string{"8.8.8.8"}, Now: clock.now})
	var events []json.RawMessage
	if err := json.Unmarshal([]byte(filterFixture), &events); err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := sim.Put(ev); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	sim.Start()
	t.Cleanup(sim.Close)
	return sim
}

type searchResult struct {
	status int
	header http.Header
	body   []byte
	events []*misp.Event
}

func post(t *testing.T, sim *simmisp.MISP, key string, body string) searchResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sim.URL()+"/events/restSearch", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := searchResult{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode == http.StatusOK {
		if res.events, err = misp.DecodeEvents(data); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
	}
	return res
}

func uuidsOf(events []*misp.Event) []string {
	var out []string
	for _, ev := range events {
		out = append(out, ev.UUID)
	}
	return out
}

func attrUUIDs(ev *misp.Event) []string {
	var out []string
	ev.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool {
		out = append(out, a.UUID[:2])
		return true
	})
	return out
}

func TestRestSearchFilters(t *testing.T) {
	clock := &fixedClock{t: time.Unix(3500, 0)}
	sim := newFixtureSim(t, clock)
	tests := []struct {
		name       string
		body       string
		wantEvents []string
		wantAttrs  map[string][]string // event uuid → attribute uuid prefixes returned
	}{
		{name: "tag string", body: `{"tags":"tlp:green"}`, wantEvents: []string{evA}},
		{name: "tag list is OR", body: `{"tags":["tlp:green","tlp:red"]}`, wantEvents: []string{evA, evB}},
		{name: "tag case-insensitive with % wildcard", body: `{"tags":"TLP:%"}`, wantEvents: []string{evA, evB}},
		{name: "attribute tag selects its event", body: `{"tags":"kill-chain:Delivery"}`, wantEvents: []string{evB}},
		{name: "! negates", body: `{"tags":["!tlp:red"]}`, wantEvents: []string{evA, evC}},
		{name: "NOT object", body: `{"tags":{"NOT":["tlp:red","tlp:green"]}}`, wantEvents: []string{evC}},
		{name: "OR and NOT", body: `{"tags":{"OR":["tlp:%"],"NOT":["tlp:red"]}}`, wantEvents: []string{evA}},
		{name: "AND", body: `{"tags":{"AND":["tlp:green","workflow:state=\"complete\""]}}`, wantEvents: []string{evA}},
		{name: "AND unmatched", body: `{"tags":{"AND":["tlp:green","tlp:red"]}}`, wantEvents: nil},
		{name: "NOT on attribute tag drops the attribute", body: `{"tags":{"NOT":["kill-chain:Delivery"]}}`, wantEvents: []string{evA, evB, evC},
			wantAttrs: map[string][]string{evB: nil}},
		{name: "timestamp epoch", body: `{"timestamp":2000}`, wantEvents: []string{evB, evC}},
		{name: "timestamp string", body: `{"timestamp":"2001"}`, wantEvents: []string{evC}},
		{name: "timestamp range", body: `{"timestamp":[2500,1500]}`, wantEvents: []string{evB}},
		{name: "timestamp relative", body: `{"timestamp":"1600s"}`, wantEvents: []string{evB, evC}},
		{name: "invalid time matches nothing", body: `{"timestamp":"not a time"}`, wantEvents: nil},
		{name: "publish_timestamp", body: `{"publish_timestamp":1500}`, wantEvents: []string{evB}},
		{name: "last is publish_timestamp", body: `{"last":"25m"}`, wantEvents: []string{evB}},
		{name: "published true", body: `{"published":1}`, wantEvents: []string{evA, evB}},
		{name: "published false", body: `{"published":false}`, wantEvents: []string{evC}},
		{name: "eventid", body: `{"eventid":["1","3"]}`, wantEvents: []string{evA, evC}},
		{name: "uuid", body: `{"uuid":"` + strings.ToUpper(evB) + `"}`, wantEvents: []string{evB}},
		{name: "to_ids filters attributes and events", body: `{"to_ids":1,"published":true}`, wantEvents: []string{evA, evB},
			wantAttrs: map[string][]string{evA: {"a1"}, evB: {"b1"}}},
		{name: "to_ids 0", body: `{"to_ids":0}`, wantEvents: []string{evA}, wantAttrs: map[string][]string{evA: {"a2"}}},
		{name: "type", body: `{"type":["sha256","url"]}`, wantEvents: []string{evB, evC},
			wantAttrs: map[string][]string{evC: {"c1"}}},
		{name: "soft-deleted attributes hidden by default", body: `{"eventid":1}`, wantEvents: []string{evA},
			wantAttrs: map[string][]string{evA: {"a1", "a2"}}},
		{name: "deleted only", body: `{"deleted":"only"}`, wantEvents: []string{evA}, wantAttrs: map[string][]string{evA: {"a3"}}},
		{name: "enforceWarninglist drops the attribute, keeps the event", body: `{"eventid":1,"enforceWarninglist":true}`,
			wantEvents: []string{evA}, wantAttrs: map[string][]string{evA: {"a2"}}},
		{name: "metadata", body: `{"eventid":1,"metadata":1}`, wantEvents: []string{evA}, wantAttrs: map[string][]string{evA: nil}},
		{name: "request wrapper", body: `{"request":{"tags":"tlp:red"}}`, wantEvents: []string{evB}},
		{name: "order desc", body: `{"published":true,"order":"Event.timestamp desc"}`, wantEvents: []string{evB, evA}},
		{name: "unknown parameters ignored", body: `{"includeEventTags":true,"eventid":2}`, wantEvents: []string{evB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, sim, simmisp.DefaultKey, tt.body)
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			if got := uuidsOf(res.events); !slices.Equal(got, tt.wantEvents) {
				t.Errorf("events = %v, want %v", got, tt.wantEvents)
			}
			for _, ev := range res.events {
				want, ok := tt.wantAttrs[ev.UUID]
				if !ok {
					continue
				}
				if got := attrUUIDs(ev); !slices.Equal(got, want) {
					t.Errorf("event %s attributes = %v, want %v", ev.Info, got, want)
				}
			}
			if res.header.Get("X-Result-Count") != strconv.Itoa(len(tt.wantEvents)) {
				t.Errorf("X-Result-Count = %q, want %d", res.header.Get("X-Result-Count"), len(tt.wantEvents))
			}
		})
	}
}

func TestRestSearchRejectsBadRequests(t *testing.T) {
	sim := newFixtureSim(t, &fixedClock{t: time.Unix(5000, 0)})
	tests := []struct {
		name, key, body string
		status          int
		message         string
	}{
		{"bad key", strings.Repeat("a", 40), `{"eventid":1}`, http.StatusForbidden, "Authentication failed."},
		{"bearer key", "Bearer " + simmisp.DefaultKey, `{"eventid":1}`, http.StatusForbidden, "Authentication failed."},
		{"no filters", simmisp.DefaultKey, `{}`, http.StatusBadRequest, "Either specify the search terms"},
		{"broken JSON", simmisp.DefaultKey, `{"eventid":`, http.StatusBadRequest, "Invalid JSON input"},
		{"bad order", simmisp.DefaultKey, `{"order":"Event.uuid; DROP TABLE"}`, http.StatusBadRequest, "order"},
		{"bad limit", simmisp.DefaultKey, `{"limit":-5}`, http.StatusBadRequest, "limit"},
		{"other format", simmisp.DefaultKey, `{"returnFormat":"csv"}`, http.StatusBadRequest, "returnFormat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, sim, tt.key, tt.body)
			if res.status != tt.status {
				t.Fatalf("status = %d, want %d (%s)", res.status, tt.status, res.body)
			}
			var e struct{ Name, Message, URL string }
			if err := json.Unmarshal(res.body, &e); err != nil {
				t.Fatalf("error body %s: %v", res.body, err)
			}
			if !strings.Contains(e.Message, tt.message) || e.Name == "" || e.URL != "/events/restSearch" {
				t.Errorf("error body %s, want MISP's {name, message, url} with %q", res.body, tt.message)
			}
		})
	}
}

func TestAuthHeaders(t *testing.T) {
	sim := newFixtureSim(t, &fixedClock{t: time.Unix(5000, 0)})
	tests := []struct {
		name   string
		header string
		value  string
		status int
	}{
		{"Authorization", "Authorization", simmisp.DefaultKey, http.StatusOK},
		{"X-MISP-AUTH", "X-MISP-AUTH", simmisp.DefaultKey, http.StatusOK},
		{"comma-separated list", "Authorization", strings.Repeat("b", 40) + "," + simmisp.DefaultKey, http.StatusOK},
		{"Basic ignored", "Authorization", "Basic " + simmisp.DefaultKey, http.StatusForbidden},
		{"missing", "X-Other", simmisp.DefaultKey, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, sim.URL()+"/servers/getVersion", nil)
			req.Header.Set(tt.header, tt.value)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestRestSearchPaging(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	uuids := sim.Generate(7, 1, 3)
	sim.Start()
	defer sim.Close()
	var got []string
	for page := 1; page <= 4; page++ {
		res := post(t, sim, simmisp.DefaultKey, `{"limit":3,"page":`+strconv.Itoa(page)+`}`)
		if c := res.header.Get("X-Result-Count"); c != "7" {
			t.Errorf("page %d: X-Result-Count %q, want the total 7", page, c)
		}
		got = append(got, uuidsOf(res.events)...)
		if page == 4 && string(res.body) != `{"response":[]}` {
			t.Errorf("past the end: %s, want {\"response\":[]}", res.body)
		}
	}
	if !slices.Equal(got, uuids) {
		t.Errorf("paged uuids = %v, want %v", got, uuids)
	}
	res := post(t, sim, simmisp.DefaultKey, `{"deleted":0}`)
	if c := res.header.Get("X-Result-Count"); c != strconv.Itoa(len(res.events)) {
		t.Errorf("without limit X-Result-Count %q, want the number returned %d", c, len(res.events))
	}
}

func TestViewAndVersion(t *testing.T) {
	sim := newFixtureSim(t, &fixedClock{t: time.Unix(5000, 0)})
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, sim.URL()+path, nil)
		req.Header.Set("Authorization", simmisp.DefaultKey)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, ref := range []string{evC, "3"} {
		status, body := get("/events/view/" + ref)
		if status != http.StatusOK {
			t.Fatalf("view %s: %d %s", ref, status, body)
		}
		ev, err := misp.DecodeEvent(body)
		if err != nil || ev.UUID != evC || len(ev.Objects) != 1 {
			t.Errorf("view %s: %+v, %v", ref, ev, err)
		}
	}
	status, body := get("/events/view/dddddddd-0000-4000-8000-000000000000")
	if status != http.StatusNotFound || !bytes.Contains(body, []byte(`"message":"Invalid event"`)) {
		t.Errorf("missing event: %d %s", status, body)
	}
	status, body = get("/servers/getVersion")
	var v struct{ Version string }
	if status != http.StatusOK || json.Unmarshal(body, &v) != nil || v.Version != simmisp.DefaultVersion {
		t.Errorf("getVersion: %d %s", status, body)
	}
}

func TestEditsBumpTimestamps(t *testing.T) {
	clock := &fixedClock{t: time.Unix(5000, 0)}
	sim := newFixtureSim(t, clock)
	attr := "a2000000-0000-4000-8000-000000000000"
	tests := []struct {
		name string
		edit func() error
	}{
		{"to_ids on", func() error { return sim.SetToIDS(evA, attr, true) }},
		{"value", func() error { return sim.SetValue(evA, attr, "evil2.example") }},
		{"attribute deleted", func() error { return sim.DeleteAttribute(evA, attr) }},
		{"tag added", func() error { return sim.AddEventTag(evA, "tlp:amber") }},
		{"tag removed", func() error { return sim.RemoveEventTag(evA, "tlp:amber") }},
		{"attribute added", func() error {
			_, err := sim.AddAttribute(evA, "domain", "Network activity", "new.example", true)
			return err
		}},
	}
	last := int64(3000) // the newest event timestamp in the fixture
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The clock does not move: edits in the same second must still be visible to a
			// timestamp search from the previous watermark.
			if err := tt.edit(); err != nil {
				t.Fatal(err)
			}
			res := post(t, sim, simmisp.DefaultKey, `{"timestamp":`+strconv.Itoa(int(last+1))+`,"deleted":[0,1]}`)
			if got := uuidsOf(res.events); !slices.Equal(got, []string{evA}) {
				t.Fatalf("incremental search after edit = %v, want [A]", got)
			}
			ev := res.events[0]
			if ev.Published {
				t.Error("edited event still published")
			}
			if ev.Timestamp.Unix() <= last {
				t.Errorf("event timestamp %d not after %d", ev.Timestamp.Unix(), last)
			}
			last = ev.Timestamp.Unix()
		})
	}
	ev, ok := sim.GetEvent(evA)
	if !ok {
		t.Fatal("event A gone")
	}
	if len(ev.Attributes) != 4 || ev.Attributes[3].Value != "new.example" || !ev.Attributes[3].ToIDS {
		t.Errorf("added attribute missing: %+v", ev.Attributes)
	}
	for _, a := range ev.Attributes {
		if a.UUID == attr && (!a.Deleted || !a.ToIDS || a.Value != "evil2.example" || a.Timestamp.Unix() <= 5000) {
			t.Errorf("edited attribute = %+v", a)
		}
	}
	if err := sim.SetToIDS(evA, "nope", true); err == nil {
		t.Error("editing a missing attribute succeeded")
	}
	if err := sim.RemoveEventTag(evA, "never-there"); err == nil {
		t.Error("removing a missing tag succeeded")
	}
}

func TestGenerateEventsDeterministic(t *testing.T) {
	a := simmisp.GenerateEvents(20, 10, 42)
	b := simmisp.GenerateEvents(20, 10, 42)
	c := simmisp.GenerateEvents(20, 10, 43)
	if len(a) != 20 {
		t.Fatalf("%d events", len(a))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("event %d differs between runs with the same seed", i)
		}
	}
	if bytes.Equal(a[0], c[0]) {
		t.Error("different seeds gave the same event")
	}

	sim := simmisp.New(simmisp.Options{})
	uuids := sim.Generate(20, 10, 42)
	for i, u := range uuids {
		got, ok := sim.Get(u)
		if !ok || !bytes.Equal(got, a[i]) {
			t.Fatalf("Generate and GenerateEvents disagree on event %d", i)
		}
	}
}

func TestGenerateEventsRealistic(t *testing.T) {
	const events, attrs = 200, 20
	types := map[string]int{}
	toIDs, filterTagged, warn := 0, 0, 0
	seenUUID := map[string]bool{}
	for _, data := range simmisp.GenerateEvents(events, attrs, 1) {
		ev, err := misp.DecodeEvent(data)
		if err != nil {
			t.Fatalf("generated event does not decode: %v", err)
		}
		if len(ev.Attributes) != attrs || ev.Timestamp.IsZero() || ev.Orgc.Name == "" {
			t.Fatalf("event %s: %d attributes, timestamp %v, orgc %q", ev.UUID, len(ev.Attributes), ev.Timestamp, ev.Orgc.Name)
		}
		hasTLP := false
		for _, tg := range ev.Tags {
			hasTLP = hasTLP || strings.HasPrefix(tg.Name, "tlp:")
			if tg.Name == simmisp.FilterTag {
				filterTagged++
			}
		}
		if !hasTLP {
			t.Errorf("event %s has no tlp tag", ev.UUID)
		}
		for _, a := range ev.Attributes {
			if seenUUID[a.UUID] {
				t.Fatalf("duplicate attribute uuid %s", a.UUID)
			}
			seenUUID[a.UUID] = true
			types[a.Type]++
			if a.ToIDS {
				toIDs++
			}
			if slices.Contains(simmisp.DefaultWarninglist, a.Value) || slices.ContainsFunc(strings.Split(a.Value, "|"), func(s string) bool { return slices.Contains(simmisp.DefaultWarninglist, s) }) {
				warn++
			}
		}
	}
	for _, typ := range []string{"ip-dst", "domain", "url", "md5", "sha256", "filename|sha256", "domain|ip", "email-src", "hostname", "ip-dst|port"} {
		if types[typ] == 0 {
			t.Errorf("no %s attribute generated", typ)
		}
	}
	total := events * attrs
	if toIDs < total*8/10 || toIDs == total {
		t.Errorf("%d of %d attributes to_ids, want mostly but not all", toIDs, total)
	}
	if filterTagged < events/2 || filterTagged == events {
		t.Errorf("%d of %d events carry the filter tag, want most but not all", filterTagged, events)
	}
	if warn == 0 {
		t.Error("no warninglist values generated")
	}
}

func TestCorpusRoundTrip(t *testing.T) {
	dir := filepath.Join(sharedref.Dir(t), "corpus", "events")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	tested := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, err := misp.DecodeEvent(data)
		if err != nil || want.UUID == "" {
			continue // collections and partial events
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			sim := simmisp.New(simmisp.Options{})
			if err := sim.Put(data); err != nil {
				t.Fatalf("Put: %v", err)
			}
			body, ok := sim.Get(want.UUID)
			if !ok {
				t.Fatal("event not stored")
			}
			got, err := misp.DecodeEvent(body)
			if err != nil {
				t.Fatalf("decode round trip: %v", err)
			}
			if got.Info != want.Info || !got.Timestamp.Equal(want.Timestamp) || got.Published != want.Published ||
				len(got.Tags) != len(want.Tags) || len(got.Galaxies) != len(want.Galaxies) || got.Orgc.UUID != want.Orgc.UUID {
				t.Errorf("event fields changed in the round trip")
			}
			var wantAttrs, gotAttrs []string
			want.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool {
				wantAttrs = append(wantAttrs, a.UUID+a.Type+a.Value+strconv.Itoa(len(a.Tags)))
				return true
			})
			got.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool {
				gotAttrs = append(gotAttrs, a.UUID+a.Type+a.Value+strconv.Itoa(len(a.Tags)))
				return true
			})
			if !slices.Equal(gotAttrs, wantAttrs) {
				t.Errorf("attributes changed in the round trip: %d → %d", len(wantAttrs), len(gotAttrs))
			}
		})
		tested++
	}
	if tested == 0 {
		t.Skip("no single events in the corpus")
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	for _, in := range []string{``, `[]`, `{"Event":{"info":"no uuid"}}`, `{"Event":{"uuid":"u","timestamp":"yesterday"}}`,
		`{"Event":{"uuid":"u","Attribute":[{"uuid":"a","to_ids":"maybe"}]}}`, `{"Event":{"uuid":"u","Attribute":{}}}`} {
		if err := sim.Put([]byte(in)); err == nil {
			t.Errorf("Put(%s) accepted", in)
		}
	}
}

func TestWebhookBodyIsCoreFormat(t *testing.T) {
	sim := newFixtureSim(t, &fixedClock{t: time.Unix(5000, 0)})
	type received struct {
		header http.Header
		body   []byte
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), body}
	}))
	defer srv.Close()

	status, err := sim.PostWebhook(context.Background(), srv.URL, http.Header{"Authorization": {"webhook-secret"}}, evA)
	if err != nil || status != http.StatusOK {
		t.Fatalf("PostWebhook = %d, %v", status, err)
	}
	r := <-got
	if r.header.Get("Authorization") != "webhook-secret" || r.header.Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(r.header.Get("User-Agent"), "MISP "+simmisp.DefaultVersion+" - #") {
		t.Errorf("headers %v", r.header)
	}
	var body struct {
		Event struct {
			UUID      string `json:"uuid"`
			Attribute []struct {
				UUID    string `json:"uuid"`
				AllTags []struct {
					Name      string `json:"name"`
					Inherited bool   `json:"inherited"`
				} `json:"_allTags"`
			}
			Flat []struct {
				UUID string `json:"uuid"`
			} `json:"_AttributeFlattened"`
		}
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if body.Event.UUID != evA || len(body.Event.Attribute) != 2 || len(body.Event.Flat) != 2 {
		t.Fatalf("core format: %s", r.body)
	}
	tags := body.Event.Attribute[0].AllTags
	if len(tags) != 2 || !tags[0].Inherited || tags[0].Name != "tlp:green" {
		t.Errorf("_allTags = %+v, want the event tags marked inherited", tags)
	}
	if ev, err := misp.DecodeEvent(r.body); err != nil || ev.UUID != evA {
		t.Errorf("webhook body does not decode as an event: %v", err)
	}

	// Object attributes are flattened after top-level ones.
	core, err := sim.WebhookBody(evC)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(core, []byte(`"_AttributeFlattened":[{"id":"31"`)) {
		t.Errorf("object attribute not flattened: %s", core)
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, size := range []struct {
		name          string
		events, attrs int
	}{{"100k_attributes", 1000, 100}, {"1M_attributes", 10000, 100}} {
		b.Run(size.name, func(b *testing.B) {
			for b.Loop() {
				sim := simmisp.New(simmisp.Options{})
				sim.Generate(size.events, size.attrs, 1)
			}
			b.ReportMetric(float64(size.events*size.attrs)*float64(b.N)/b.Elapsed().Seconds(), "attributes/s")
		})
	}
}

func BenchmarkRestSearchPage(b *testing.B) {
	sim := simmisp.New(simmisp.Options{})
	sim.Generate(1000, 100, 1)
	h := sim.Handler()
	body := `{"limit":100,"page":3,"published":true,"enforceWarninglist":true}`
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/events/restSearch", strings.NewReader(body))
		req.Header.Set("Authorization", simmisp.DefaultKey)
		req.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(100*100*b.N)/b.Elapsed().Seconds(), "attributes/s")
}

func TestPutEventFromModel(t *testing.T) {
	want, err := misp.DecodeEvent([]byte(`{"Event":{"id":"9","uuid":"dddddddd-0000-4000-8000-000000000009","info":"model",
	  "published":true,"timestamp":"1700000000","Orgc":{"id":"2","name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},
	  "Tag":[{"id":"5","name":"tlp:amber","local":true}],
	  "Attribute":[{"uuid":"d1000000-0000-4000-8000-000000000000","type":"ip-dst|port","value":"198.51.100.1|443","to_ids":true,
	    "timestamp":"1700000000","first_seen":"2020-10-25T16:22:00.000000+00:00","Tag":[{"name":"kill-chain:Delivery"}]}],
	  "Object":[{"uuid":"d0000000-0000-4000-8000-000000000000","name":"file","timestamp":"1700000000","Attribute":[
	    {"uuid":"d2000000-0000-4000-8000-000000000000","type":"sha256","object_relation":"sha256","value":"ab","to_ids":false,"timestamp":"1700000000"}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	sim := simmisp.New(simmisp.Options{})
	if err := sim.PutEvent(want); err != nil {
		t.Fatalf("PutEvent: %v", err)
	}
	body, ok := sim.Get(want.UUID)
	if !ok {
		t.Fatal("not stored")
	}
	got, err := misp.DecodeEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "9" || got.Info != want.Info || !got.Timestamp.Equal(want.Timestamp) || got.Orgc.Name != "CIRCL" ||
		len(got.Tags) != 1 || !got.Tags[0].Local || got.Tags[0].Name != "tlp:amber" {
		t.Errorf("event = %+v", got)
	}
	a := got.Attributes[0]
	if a.Value != "198.51.100.1|443" || !a.ToIDS || a.FirstSeen == nil || !a.FirstSeen.Equal(*want.Attributes[0].FirstSeen) || len(a.Tags) != 1 {
		t.Errorf("attribute = %+v", a)
	}
	if len(got.Objects) != 1 || got.Objects[0].Attributes[0].ObjectRelation != "sha256" || got.Objects[0].Name != "file" {
		t.Errorf("objects = %+v", got.Objects)
	}
	if err := sim.PutEvent(&misp.Event{}); err == nil {
		t.Error("event without uuid accepted")
	}
}

func TestEditGeneratedEvent(t *testing.T) {
	sim := simmisp.New(simmisp.Options{Now: (&fixedClock{t: time.Unix(1800000000, 0)}).now})
	uuids := sim.Generate(2, 5, 9)
	before, _ := sim.GetEvent(uuids[1])
	target := before.Attributes[2]
	if err := sim.SetToIDS(uuids[1], target.UUID, !target.ToIDS); err != nil {
		t.Fatal(err)
	}
	after, _ := sim.GetEvent(uuids[1])
	for i, a := range after.Attributes {
		b := before.Attributes[i]
		switch {
		case i == 2 && (a.ToIDS == b.ToIDS || a.Timestamp.Unix() != 1800000000):
			t.Errorf("edited attribute: to_ids %v timestamp %v", a.ToIDS, a.Timestamp.Unix())
		case i != 2 && (a.UUID != b.UUID || a.Value != b.Value || a.ToIDS != b.ToIDS || !a.Timestamp.Equal(b.Timestamp)):
			t.Errorf("attribute %d changed by an edit of another one", i)
		}
	}
	if got := sim.AttributeCount(); got != 10 {
		t.Errorf("AttributeCount = %d, want 10", got)
	}
	other, _ := sim.GetEvent(uuids[0])
	if other.Timestamp.Unix() >= 1800000000 {
		t.Error("an edit touched another event")
	}
}

// FuzzPut checks that any event Put accepts is served back as JSON package misp decodes.
func FuzzPut(f *testing.F) {
	var fixture []json.RawMessage
	if err := json.Unmarshal([]byte(filterFixture), &fixture); err != nil {
		f.Fatal(err)
	}
	for _, ev := range fixture {
		f.Add([]byte(ev))
	}
	f.Add(simmisp.GenerateEvents(1, 3, 1)[0])
	f.Fuzz(func(t *testing.T, data []byte) {
		sim := simmisp.New(simmisp.Options{})
		if err := sim.Put(data); err != nil {
			return
		}
		uuids := sim.Events()
		if len(uuids) != 1 {
			t.Fatalf("%d events stored", len(uuids))
		}
		body, ok := sim.Get(uuids[0])
		if !ok {
			t.Fatal("accepted event cannot be encoded")
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON served: %s", body)
		}
	})
}

func TestJSONWrittenAsPHPDoes(t *testing.T) {
	sim := simmisp.New(simmisp.Options{})
	in := `{"Event":{"uuid":"eeeeeeee-0000-4000-8000-000000000005","info":"Ünïcode <b>",
	  "Attribute":[{"uuid":"e1000000-0000-4000-8000-000000000000","type":"url","value":"https://x.example/a?b=1&c=2","to_ids":true}]}}`
	if err := sim.Put([]byte(in)); err != nil {
		t.Fatal(err)
	}
	body, _ := sim.Get("eeeeeeee-0000-4000-8000-000000000005")
	for _, want := range []string{`"value":"https://x.example/a?b=1&c=2"`, `"info":"Ünïcode <b>"`, `"to_ids":true`, `"timestamp":"0"`, `"id":"1"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
	if bytes.ContainsAny(body, "\n\t") {
		t.Error("body is not compact")
	}
}

func TestMisp2SentinelDefaultFilterSelectsGeneratedEvents(t *testing.T) {
	// misp2sentinel's default misp_event_filters, resolved by a simulator whose clock is a
	// week after the first generated events.
	clock := &fixedClock{t: simmisp.GenerationEpoch().Add(7 * 24 * time.Hour)}
	sim := simmisp.New(simmisp.Options{Now: clock.now, Warninglist: simmisp.DefaultWarninglist})
	sim.Generate(50, 10, 5)
	sim.Start()
	defer sim.Close()
	res := post(t, sim, simmisp.DefaultKey, `{"published":1,"tags":["workflow:state=\"complete\""],"enforceWarninglist":true,"includeEventTags":true,"publish_timestamp":"14d"}`)
	if res.status != http.StatusOK || len(res.events) == 0 || len(res.events) == 50 {
		t.Fatalf("status %d, %d of 50 events; want a filtered, non-empty selection", res.status, len(res.events))
	}
	for _, ev := range res.events {
		if !ev.Published || !slices.ContainsFunc(ev.Tags, func(tg misp.Tag) bool { return tg.Name == simmisp.FilterTag }) {
			t.Errorf("event %s does not satisfy the filter", ev.UUID)
		}
		ev.AllAttributes(func(_ *misp.Object, a *misp.Attribute) bool {
			if slices.Contains(simmisp.DefaultWarninglist, a.Value) {
				t.Errorf("warninglisted value %s returned", a.Value)
			}
			return true
		})
	}
}
