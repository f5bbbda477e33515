package stix

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mispsentinel/listener/misp"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
)

const (
	phishingUUID = "a62a8db3-f23a-4d8f-afd6-9dbc77e7813b"
	loaderUUID   = "c8d1a6e1-8a1e-4b4f-9a2e-3b0a8d9a1c55"
	apt28UUID    = "7cdd0f3e-6ed8-4b0d-9f4a-0a8b0b8e7d11"
	apt16UUID    = "d6e88e18-81e8-4709-82d8-973095da1e70"
)

func galaxy(typ string, clusters ...misp.GalaxyCluster) misp.Galaxy {
	for i := range clusters {
		clusters[i].Type = typ
	}
	return misp.Galaxy{Type: typ, Name: typ, Clusters: clusters}
}

func phishing() misp.GalaxyCluster {
	return misp.GalaxyCluster{
		UUID: phishingUUID, Value: "Spearphishing Attachment - T1566.001",
		Description: "Adversaries may send spearphishing emails with a malicious attachment. (Citation: Example)\n\nMore text.",
		Meta:        json.RawMessage(`{"external_id":["T1566.001"],"kill_chain":["mitre-attack:initial-access"],"refs":["https://attack.mitre.org/techniques/T1566/001"],"synonyms":["Phishing attachment"]}`),
	}
}

func loader() misp.GalaxyCluster {
	return misp.GalaxyCluster{UUID: loaderUUID, Value: "Ingress Tool Transfer - T1105",
		Meta: json.RawMessage(`{"external_id":"T1105","kill_chain":["mitre-attack:command-and-control"]}`)}
}

func apt28() misp.GalaxyCluster {
	return misp.GalaxyCluster{UUID: apt28UUID, Value: "Sofacy", Description: "APT28",
		Meta: json.RawMessage(`{"synonyms":["APT28","Fancy Bear","Sofacy"],"threat_actor_types":["nation-state"]}`)}
}

// contextEvent has an event-level technique and threat actor, an attribute-level technique
// and intrusion set on the first attribute, a malware cluster on the second and a not-to_ids
// third attribute.
func contextEvent() *misp.Event {
	a1 := attr("ip-dst", "198.51.100.7")
	a1.Galaxies = []misp.Galaxy{galaxy("mitre-attack-pattern", loader()), galaxy("mitre-intrusion-set", misp.GalaxyCluster{UUID: apt16UUID, Value: "APT16 - G0023"})}
	a2 := attr("domain", "evil.example.com")
	a2.Galaxies = []misp.Galaxy{galaxy("malpedia", misp.GalaxyCluster{UUID: "2d1b0c8f-0e0e-4f76-8c2c-8c8a3fbd7c1e", Value: "Emotet"})}
	a3 := attr("url", "https://evil.example.com/x")
	a3.ToIDS = false
	a3.Galaxies = []misp.Galaxy{galaxy("mitre-attack-pattern", misp.GalaxyCluster{UUID: "0b3b2c6e-8a5e-4f3e-9b1d-2c3d4e5f6a7b", Value: "Unreferenced - T1000"})}
	ev := event(a1, a2, a3)
	ev.Galaxies = []misp.Galaxy{galaxy("mitre-attack-pattern", phishing()), galaxy("threat-actor", apt28())}
	return ev
}

func contextOptions(mode ContextMode) Options {
	o := testOptions()
	o.Context = mode
	return o
}

func byType(res Result, typ string) []Object {
	var out []Object
	for _, o := range res.Objects {
		if o.Type == typ {
			out = append(out, o)
		}
	}
	return out
}

// checkReferencesComeFirst fails unless every relationship's source and target are objects
// placed before it, and every object passes the simulated Sentinel's per-record validation.
func checkReferencesComeFirst(t *testing.T, res Result) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range res.Objects {
		if msgs := simsentinel.ValidateObject(o.Body); msgs != nil {
			t.Errorf("%s refused by Sentinel's validation: %v\n%s", o.ID, msgs, o.Body)
		}
		if o.Type == "relationship" {
			if !seen[o.SourceRef] || !seen[o.TargetRef] {
				t.Errorf("relationship %s references an object not before it: %s -> %s", o.ID, o.SourceRef, o.TargetRef)
			}
			var body struct{ SourceRef, TargetRef string }
			if err := json.Unmarshal(o.Body, &struct {
				S *string `json:"source_ref"`
				T *string `json:"target_ref"`
			}{&body.SourceRef, &body.TargetRef}); err != nil || body.SourceRef != o.SourceRef || body.TargetRef != o.TargetRef {
				t.Errorf("relationship %s: body refs %+v differ from the object's %s -> %s (%v)", o.ID, body, o.SourceRef, o.TargetRef, err)
			}
		}
		if !slices.Contains([]string{"indicator", "identity", "attack-pattern", "threat-actor", "relationship"}, o.Type) {
			t.Errorf("%s: type %q is not one Sentinel stores", o.ID, o.Type)
		}
		seen[o.ID] = true
	}
}

func TestContextObjectsAndRelationships(t *testing.T) {
	res := Convert(contextEvent(), contextOptions(ContextAll), testNow)
	checkReferencesComeFirst(t, res)

	aps, tas, rels := byType(res, "attack-pattern"), byType(res, "threat-actor"), byType(res, "relationship")
	ids := func(list []Object) []string {
		var out []string
		for _, o := range list {
			out = append(out, o.ID)
		}
		slices.Sort(out)
		return out
	}
	wantAP := []string{"attack-pattern--" + phishingUUID, "attack-pattern--" + loaderUUID}
	slices.Sort(wantAP)
	if got := ids(aps); !slices.Equal(got, wantAP) {
		t.Errorf("attack patterns %v, want %v (the unreferenced technique of the not-to_ids attribute must not be exported)", got, wantAP)
	}
	wantTA := []string{"threat-actor--" + apt16UUID, "threat-actor--" + apt28UUID}
	slices.Sort(wantTA)
	if got := ids(tas); !slices.Equal(got, wantTA) {
		t.Errorf("threat actors %v, want %v (intrusion sets become threat actors)", got, wantTA)
	}
	// ip-dst: 2 event clusters + 2 attribute clusters; domain: 2 event clusters.
	if len(rels) != 6 {
		t.Fatalf("%d relationships, want 6", len(rels))
	}
	ind := res.Decisions[0].Exported[0]
	for _, o := range rels {
		if o.ID != RelationshipID(o.SourceRef, "indicates", o.TargetRef) {
			t.Errorf("relationship id %s is not RelationshipID of its refs", o.ID)
		}
		if !strings.HasPrefix(o.SourceRef, "indicator--") || o.Shared || o.EventUUID != testEventUUID {
			t.Errorf("relationship %+v: want an event-owned indicates from an indicator", o)
		}
	}
	if !slices.ContainsFunc(rels, func(o Object) bool { return o.SourceRef == ind && o.TargetRef == "threat-actor--"+apt16UUID }) {
		t.Errorf("no relationship from the ip-dst indicator to its attribute-level intrusion set")
	}
	for _, o := range append(aps, tas...) {
		if !o.Shared || o.EventUUID != "" {
			t.Errorf("%s: context objects are shared by every event (Shared, no event): %+v", o.ID, o)
		}
	}

	var ap struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Aliases     []string `json:"aliases"`
		KillChain   []struct {
			Name  string `json:"kill_chain_name"`
			Phase string `json:"phase_name"`
		} `json:"kill_chain_phases"`
		Refs []struct {
			Source string `json:"source_name"`
			ID     string `json:"external_id"`
			URL    string `json:"url"`
		} `json:"external_references"`
	}
	for _, o := range aps {
		if o.ID == "attack-pattern--"+phishingUUID {
			if err := json.Unmarshal(o.Body, &ap); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ap.Name != "Spearphishing Attachment" || ap.Description != "Adversaries may send spearphishing emails with a malicious attachment." ||
		!slices.Equal(ap.Aliases, []string{"Phishing attachment"}) || len(ap.KillChain) != 1 ||
		ap.KillChain[0].Name != "mitre-attack" || ap.KillChain[0].Phase != "initial-access" ||
		len(ap.Refs) != 1 || ap.Refs[0].Source != "mitre-attack" || ap.Refs[0].ID != "T1566.001" ||
		ap.Refs[0].URL != "https://attack.mitre.org/techniques/T1566/001" {
		t.Errorf("attack pattern fields: %+v", ap)
	}
	var ta struct {
		Name    string   `json:"name"`
		Aliases []string `json:"aliases"`
		Types   []string `json:"threat_actor_types"`
	}
	for _, o := range tas {
		if o.ID == "threat-actor--"+apt28UUID {
			if err := json.Unmarshal(o.Body, &ta); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ta.Name != "Sofacy" || !slices.Equal(ta.Aliases, []string{"APT28", "Fancy Bear"}) || !slices.Equal(ta.Types, []string{"nation-state"}) {
		t.Errorf("threat actor fields: %+v", ta)
	}

	reasons := map[string]ContextSkipReason{}
	for _, d := range res.Context {
		reasons[d.Value] = d.Reason
		if d.Reason != "" && d.Detail == "" {
			t.Errorf("cluster %q skipped (%s) without a detail", d.Value, d.Reason)
		}
	}
	if reasons["Emotet"] != ContextUnsupportedGalaxy || reasons["Unreferenced - T1000"] != ContextNoIndicator || reasons["Sofacy"] != "" {
		t.Errorf("context decisions: %v", reasons)
	}
}

func TestContextModesAndLevels(t *testing.T) {
	ev := contextEvent()
	plain := Convert(ev, testOptions(), testNow)
	none := Convert(ev, contextOptions(ContextNone), testNow)
	if len(plain.Objects) != len(none.Objects) || none.Context != nil {
		t.Fatalf("context none must keep today's output: %d vs %d objects", len(plain.Objects), len(none.Objects))
	}
	for i := range plain.Objects {
		if string(plain.Objects[i].Body) != string(none.Objects[i].Body) {
			t.Fatalf("context none changed object %s", plain.Objects[i].ID)
		}
	}

	ap := Convert(ev, contextOptions(ContextAttackPatterns), testNow)
	checkReferencesComeFirst(t, ap)
	if n := len(byType(ap, "threat-actor")); n != 0 {
		t.Errorf("context attack-patterns exported %d threat actors", n)
	}
	if n := len(byType(ap, "relationship")); n != 3 {
		t.Errorf("context attack-patterns: %d relationships, want 3", n)
	}

	opts := contextOptions(ContextAll)
	opts.ContextLevels = ContextLevelsAttribute
	attrOnly := Convert(ev, opts, testNow)
	checkReferencesComeFirst(t, attrOnly)
	if n := len(byType(attrOnly, "relationship")); n != 2 {
		t.Errorf("attribute level only: %d relationships, want 2", n)
	}
	for _, d := range attrOnly.Context {
		if d.Value == "Sofacy" && d.Reason != ContextEventLevelOff {
			t.Errorf("event-level cluster with context_levels attribute: %+v", d)
		}
	}
}

func TestContextFollowsTheIndicatorsFilters(t *testing.T) {
	ev := contextEvent()
	for i := range ev.Attributes {
		ev.Attributes[i].Tags = []misp.Tag{{Name: "tlp:red"}}
	}
	opts := contextOptions(ContextAll)
	opts.Filter.MaxTLP = "tlp:amber"
	res := Convert(ev, opts, testNow)
	if len(res.Objects) != 1 { // the identity only
		t.Fatalf("indicators above the TLP ceiling left %d objects", len(res.Objects))
	}
	for _, d := range res.Context {
		if d.Reason == "" {
			t.Errorf("cluster %q exported while no indicator may reference it", d.Value)
		}
	}
}

func TestContextObjectsAreSharedAcrossEvents(t *testing.T) {
	a := contextEvent()
	b := contextEvent()
	b.UUID, b.Info, b.Timestamp = "0d5e1f0a-2222-4333-8444-555566667777", "another event", testNow
	b.Attributes[0].UUID = testAttrUUID("other")
	ra, rb := Convert(a, contextOptions(ContextAll), testNow), Convert(b, contextOptions(ContextAll), testNow.Add(1000))
	shared := func(res Result) map[string]string {
		m := map[string]string{}
		for _, o := range res.Objects {
			if o.Type == "attack-pattern" || o.Type == "threat-actor" {
				m[o.ID] = o.Hash + string(o.Body)
			}
		}
		return m
	}
	sa, sb := shared(ra), shared(rb)
	if len(sa) != 4 || len(sa) != len(sb) {
		t.Fatalf("context objects %d and %d", len(sa), len(sb))
	}
	for id, v := range sa {
		if sb[id] != v {
			t.Errorf("%s differs between events sharing it", id)
		}
	}
}

func TestContextIDWithoutUUID(t *testing.T) {
	ev := event(attr("ip-dst", "198.51.100.9"))
	ev.Galaxies = []misp.Galaxy{galaxy("threat-actor", misp.GalaxyCluster{UUID: "not-a-uuid", Value: "Local Actor"})}
	r1 := Convert(ev, contextOptions(ContextAll), testNow)
	r2 := Convert(ev, contextOptions(ContextAll), testNow)
	tas := byType(r1, "threat-actor")
	if len(tas) != 1 || tas[0].ID != byType(r2, "threat-actor")[0].ID || !strings.HasPrefix(tas[0].ID, "threat-actor--") {
		t.Fatalf("threat actors %+v", tas)
	}
	checkReferencesComeFirst(t, r1)
}

func TestRelationshipIDIsUUIDv5(t *testing.T) {
	src, dst := "indicator--"+testAttrUUID("x"), "attack-pattern--"+phishingUUID
	want := "relationship--" + uuid.NewSHA1(Namespace, []byte(src+"/indicates/"+dst)).String()
	if got := RelationshipID(src, "indicates", dst); got != want {
		t.Fatalf("RelationshipID = %s, want %s", got, want)
	}
}
