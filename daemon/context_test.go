package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/sim/lab"
	simsentinel "github.com/mispsentinel/listener/sim/sentinel"
	"github.com/mispsentinel/listener/stix"
)

const sharedTechnique = "2e34237d-8574-43f6-aace-ae2915de8597"

// contextEventJSON is an unpublished MISP event with one exported domain attribute and the
// shared ATT&CK technique at event level.
func contextEventJSON(uuid, attrUUID, domain string) []byte {
	return fmt.Appendf(nil, `{"Event":{"id":"0","uuid":%q,"info":"context test","date":"2026-11-01","timestamp":"1793500000","published":false,"analysis":"2","threat_level_id":"1","distribution":"1",
"Orgc":{"id":"1","name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},"Tag":[],
"Attribute":[{"id":"0","type":"domain","category":"Network activity","to_ids":true,"uuid":%q,"timestamp":"1793500000","distribution":"5","value":%q,"comment":"","deleted":false}],
"Object":[],
"Galaxy":[{"uuid":"c4e851fa-775f-11e7-8163-b774922098cd","name":"Attack Pattern","type":"mitre-attack-pattern","description":"ATT&CK Tactic","GalaxyCluster":[{"uuid":%q,"type":"mitre-attack-pattern","value":"Spearphishing Attachment - T1566.001","tag_name":"misp-galaxy:mitre-attack-pattern=\"Spearphishing Attachment - T1566.001\"","description":"Adversaries may send spearphishing emails with a malicious attachment.","meta":{"external_id":["T1566.001"],"kill_chain":["mitre-attack:initial-access"]}}]}]}}`,
		uuid, attrUUID, domain, sharedTechnique)
}

// contextRecords returns the simulator's attack patterns and relationships of the lab's sink.
func contextRecords(l *lab.Lab, source string) (patterns, relationships map[string]simsentinel.Record) {
	patterns, relationships = map[string]simsentinel.Record{}, map[string]simsentinel.Record{}
	for id, r := range l.Sentinel.Indicators(l.Opts.Sinks[0].WorkspaceID, source) {
		switch r.Type {
		case "attack-pattern":
			patterns[id] = r
		case "relationship":
			relationships[id] = r
		}
	}
	return patterns, relationships
}

func live(recs map[string]simsentinel.Record) int {
	n := 0
	for _, r := range recs {
		if !r.Revoked {
			n++
		}
	}
	return n
}

// TestContextAcrossEvents: two events sharing a technique give one attack pattern and two
// relationships; deleting one event revokes its relationship only (the attack pattern, still
// referenced, stays); deleting the second revokes the rest, the attack pattern included. No
// upload names an object the sink was not sent, and Sentinel refuses nothing.
func TestContextAcrossEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), ZeroMQ: true, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	events := []string{"6a0b2c3d-1111-4aaa-8bbb-000000000001", "6a0b2c3d-1111-4aaa-8bbb-000000000002"}
	for i, u := range events {
		if err := l.MISP.Put(contextEventJSON(u, fmt.Sprintf("7b1c2d3e-2222-4ccc-8ddd-00000000000%d", i+1), fmt.Sprintf("c2-%d.qzx-campaign.net", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	d, cfg := startDaemon(t, l)
	if cfg.Sinks[0].Context != "all" {
		t.Fatalf("the lab's STIX objects sink has context %q, want the default all", cfg.Sinks[0].Context)
	}
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	for _, u := range events {
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	source := cfg.Sinks[0].SourceSystem
	pattern := "attack-pattern--" + sharedTechnique
	waitFor(t, 60*time.Second, "one attack pattern and two relationships", func() (bool, string) {
		aps, rels := contextRecords(l, source)
		return live(aps) == 1 && live(rels) == 2, fmt.Sprintf("%d attack patterns, %d relationships live", live(aps), live(rels))
	})
	aps, _ := contextRecords(l, source)
	if r, ok := aps[pattern]; !ok || r.Revoked {
		t.Fatalf("attack patterns %v, want %s live", aps, pattern)
	}

	if err := l.MISP.DeleteZMQ(l.Publisher, events[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first event's relationship revoked", func() (bool, string) {
		_, rels := contextRecords(l, source)
		return live(rels) == 1 && len(rels) == 2, fmt.Sprintf("%d of %d relationships live", live(rels), len(rels))
	})
	aps, _ = contextRecords(l, source)
	if aps[pattern].Revoked {
		t.Fatalf("attack pattern revoked while the second event's relationship still references it")
	}

	if err := l.MISP.DeleteZMQ(l.Publisher, events[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "everything revoked", func() (bool, string) {
		aps, rels := contextRecords(l, source)
		return live(rels) == 0 && live(aps) == 0, fmt.Sprintf("%d relationships, %d attack patterns live", live(rels), live(aps))
	})
	st := l.Sentinel.Stats()
	if st.DanglingRefs != 0 || st.ObjectsRejected != 0 || st.Unrevoked != 0 {
		t.Fatalf("simulator stats %+v: want no dangling reference, rejection or un-revocation", st)
	}
}

const sharedActor = "7cdff317-a673-4474-84ec-4f1754947823"

// relatedEventJSON is contextEventJSON with, when actor is set, an event-level threat actor
// whose cluster carries MISP's relation "uses" to the shared technique (the shape of a
// cluster MISP fetched in full: GalaxyClusterRelation with the referenced cluster's uuid and
// the relation type).
func relatedEventJSON(uuid, attrUUID, domain string, timestamp int, actor bool) []byte {
	ev := string(contextEventJSON(uuid, attrUUID, domain))
	ev = strings.ReplaceAll(ev, `"timestamp":"1793500000"`, fmt.Sprintf(`"timestamp":"%d"`, timestamp))
	if !actor {
		return []byte(ev)
	}
	galaxy := fmt.Sprintf(`{"uuid":"698774c7-8022-42c4-917f-8d6e4f06ada3","name":"Threat Actor","type":"threat-actor","description":"Threat actors","GalaxyCluster":[{"uuid":%q,"type":"threat-actor","value":"APT29","tag_name":"misp-galaxy:threat-actor=\"APT29\"","description":"A threat actor.","meta":{"synonyms":["Cozy Bear"]},
"GalaxyClusterRelation":[{"id":"7","galaxy_cluster_id":"12","referenced_galaxy_cluster_id":"34","referenced_galaxy_cluster_uuid":%q,"referenced_galaxy_cluster_type":"uses","galaxy_cluster_uuid":%q,"distribution":"3","sharing_group_id":null,"default":true,"Tag":[]}]}]}`,
		sharedActor, sharedTechnique, sharedActor)
	return []byte(strings.Replace(ev, `"Galaxy":[`, `"Galaxy":[`+galaxy+`,`, 1))
}

// TestClusterRelationAcrossEvents: a threat actor that uses the technique in two events gives
// one uses relationship between the two context objects; removing the actor from the first
// event leaves it live (the second still yields it); removing it from the second revokes it
// and the threat actor, while the technique, still indicated, stays.
func TestClusterRelationAcrossEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	l, err := lab.Start(lab.Options{Dir: t.TempDir(), ZeroMQ: true, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	events := []string{"6a0b2c3d-1111-4aaa-8bbb-000000000011", "6a0b2c3d-1111-4aaa-8bbb-000000000012"}
	put := func(i, timestamp int, actor bool) {
		t.Helper()
		ev := relatedEventJSON(events[i], fmt.Sprintf("7b1c2d3e-2222-4ccc-8ddd-00000000001%d", i+1), fmt.Sprintf("c2-%d.qzx-actor.net", i+1), timestamp, actor)
		if err := l.MISP.Put(ev); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 1793500000, true)
	put(1, 1793500000, true)
	d, cfg := startDaemon(t, l)
	waitForInitialReconcile(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Publisher.WaitForSubscription(ctx, "misp_json"); err != nil {
		t.Fatal(err)
	}
	publish := func(u string) {
		t.Helper()
		if err := l.MISP.PublishZMQ(l.Publisher, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range events {
		publish(u)
	}
	source := cfg.Sinks[0].SourceSystem
	actor, pattern := "threat-actor--"+sharedActor, "attack-pattern--"+sharedTechnique
	uses := stix.RelationshipID(actor, "uses", pattern)
	state := func() (recs map[string]simsentinel.Record, liveRels int, desc string) {
		recs = l.Sentinel.Indicators(l.Opts.Sinks[0].WorkspaceID, source)
		for _, r := range recs {
			if r.Type == "relationship" && !r.Revoked {
				liveRels++
			}
		}
		st := func(id string) string {
			r, ok := recs[id]
			switch {
			case !ok:
				return "absent"
			case r.Revoked:
				return "revoked"
			}
			return "live"
		}
		return recs, liveRels, fmt.Sprintf("%d relationships live; uses %s, actor %s, technique %s", liveRels, st(uses), st(actor), st(pattern))
	}
	isLive := func(recs map[string]simsentinel.Record, id string) bool { r, ok := recs[id]; return ok && !r.Revoked }

	// Two indicators, each indicating the technique and the actor, and the actor's uses.
	waitFor(t, 60*time.Second, "the uses relationship between the actor and the technique", func() (bool, string) {
		recs, n, desc := state()
		return n == 5 && isLive(recs, uses) && isLive(recs, actor) && isLive(recs, pattern), desc
	})

	put(0, 1793500100, false)
	publish(events[0])
	waitFor(t, 30*time.Second, "the first event's relationship to the actor revoked, uses still live", func() (bool, string) {
		recs, n, desc := state()
		return n == 4 && isLive(recs, uses) && isLive(recs, actor), desc
	})

	put(1, 1793500100, false)
	publish(events[1])
	waitFor(t, 30*time.Second, "uses and the actor revoked, the technique live", func() (bool, string) {
		recs, n, desc := state()
		r, ok := recs[uses]
		return n == 2 && ok && r.Revoked && !isLive(recs, actor) && isLive(recs, pattern), desc
	})
	st := l.Sentinel.Stats()
	if st.DanglingRefs != 0 || st.ObjectsRejected != 0 || st.Unrevoked != 0 {
		t.Fatalf("simulator stats %+v: want no dangling reference, rejection or un-revocation", st)
	}
}
