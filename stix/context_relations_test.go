package stix

import (
	"slices"
	"testing"

	"github.com/mispsentinel/listener/misp"
)

const unreferencedUUID = "0b3b2c6e-8a5e-4f3e-9b1d-2c3d4e5f6a7b"

// relatedEvent is contextEvent whose clusters carry MISP's relations: APT28 uses the
// event-level technique and the unreferenced one, is similar to APT16 and uses a technique
// absent from the event; APT16 (an intrusion set) is attributed to APT28 (written as
// TargetingClusterRelation on APT28, so the relation's source is APT16); the attribute-level
// technique is a sub-technique of the event-level one.
func relatedEvent() *misp.Event {
	ev := contextEvent()
	ta := &ev.Galaxies[1].Clusters[0]
	ta.Relations = []misp.ClusterRelation{
		{Source: apt28UUID, Type: "uses", Target: phishingUUID},
		{Source: apt28UUID, Type: "uses", Target: unreferencedUUID},
		{Source: apt28UUID, Type: "similar", Target: apt16UUID},
		{Source: apt28UUID, Type: "uses", Target: "3b0e52ce-517a-4614-a523-1bd5deef6c5e"},
		{Source: apt16UUID, Type: "attributed-to", Target: apt28UUID},
	}
	ap := &ev.Attributes[0].Galaxies[0].Clusters[0]
	ap.Relations = []misp.ClusterRelation{{Source: loaderUUID, Type: "subtechnique-of", Target: phishingUUID}}
	// The same relation, as the other end carries it: one relationship.
	ev.Galaxies[0].Clusters[0].Relations = []misp.ClusterRelation{{Source: apt28UUID, Type: "uses", Target: phishingUUID}}
	return ev
}

func TestClusterRelationsBecomeRelationships(t *testing.T) {
	res := Convert(relatedEvent(), contextOptions(ContextAll), testNow)
	checkReferencesComeFirst(t, res)
	var got []string
	for _, o := range byType(res, "relationship") {
		if o.SourceRef[:len("indicator--")] == "indicator--" {
			continue
		}
		got = append(got, o.SourceRef+" "+o.TargetRef)
		typ := map[string]string{
			"threat-actor--" + apt28UUID:    "uses",
			"threat-actor--" + apt16UUID:    "attributed-to",
			"attack-pattern--" + loaderUUID: "subtechnique-of",
		}[o.SourceRef]
		if o.ID != RelationshipID(o.SourceRef, typ, o.TargetRef) {
			t.Errorf("relationship %s is not RelationshipID(%s, %s, %s)", o.ID, o.SourceRef, typ, o.TargetRef)
		}
		if !o.Shared || o.EventUUID != "" {
			t.Errorf("%s: a relationship between clusters is shared by every event holding both (Shared, no event): %+v", o.ID, o)
		}
	}
	want := []string{
		"threat-actor--" + apt28UUID + " attack-pattern--" + phishingUUID,
		"threat-actor--" + apt16UUID + " threat-actor--" + apt28UUID,
		"attack-pattern--" + loaderUUID + " attack-pattern--" + phishingUUID,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("relationships between clusters:\n%v\nwant\n%v", got, want)
	}

	decisions := map[string]RelationDecision{}
	for _, d := range res.Context {
		for _, r := range d.Relations {
			decisions[d.Value+" "+r.Type+" "+r.Target] = r
		}
	}
	for key, reason := range map[string]ContextSkipReason{
		"Sofacy uses Spearphishing Attachment - T1566.001":                                   "",
		"Sofacy uses Unreferenced - T1000":                                                   RelationEndNotExported,
		"Sofacy similar APT16 - G0023":                                                       RelationTypeNotExported,
		"APT16 - G0023 attributed-to Sofacy":                                                 "",
		"Ingress Tool Transfer - T1105 subtechnique-of Spearphishing Attachment - T1566.001": "",
	} {
		d, ok := decisions[key]
		switch {
		case !ok:
			t.Errorf("no decision for %q (have %v)", key, decisions)
		case d.Reason != reason || (reason == "") != (d.ID != "") || (reason != "" && d.Detail == ""):
			t.Errorf("%q: %+v, want reason %q", key, d, reason)
		}
	}
	if len(decisions) != 5 {
		t.Errorf("%d relation decisions, want 5 (a relation to a cluster outside the event is not one): %v", len(decisions), decisions)
	}
}

func TestClusterRelationsFollowTheSink(t *testing.T) {
	ev := relatedEvent()
	ap := Convert(ev, contextOptions(ContextAttackPatterns), testNow)
	checkReferencesComeFirst(t, ap)
	for _, o := range byType(ap, "relationship") {
		if o.SourceRef[:len("threat-actor--")] == "threat-actor--" {
			t.Errorf("context attack-patterns sent %s from a threat actor", o.ID)
		}
	}
	if n := len(byType(ap, "relationship")); n != 4 { // 3 indicates + subtechnique-of
		t.Errorf("context attack-patterns: %d relationships, want 4", n)
	}

	for i := range ev.Attributes {
		ev.Attributes[i].Tags = []misp.Tag{{Name: "tlp:red"}}
	}
	opts := contextOptions(ContextAll)
	opts.Filter.MaxTLP = "tlp:amber"
	if res := Convert(ev, opts, testNow); len(res.Objects) != 1 {
		t.Errorf("indicators above the TLP ceiling left %d objects (no relationship between clusters nothing references)", len(res.Objects))
	}
}
