package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// relationEvent has one exported attribute carrying a technique and a threat actor whose
// cluster uses the technique and is similar to it.
const relationEvent = `{"Event":{"uuid":"5f3c1a2b-1111-4222-8333-444455556666","info":"relations","timestamp":"1793500000",
"Orgc":{"name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},
"Attribute":[{"uuid":"8a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","type":"domain","category":"Network activity","to_ids":true,"value":"c2.qzx-actor.net","timestamp":"1793500000",
"Galaxy":[
 {"type":"mitre-attack-pattern","GalaxyCluster":[{"uuid":"2e34237d-8574-43f6-aace-ae2915de8597","type":"mitre-attack-pattern","value":"Spearphishing Attachment - T1566.001"}]},
 {"type":"threat-actor","GalaxyCluster":[{"uuid":"7cdff317-a673-4474-84ec-4f1754947823","type":"threat-actor","value":"APT29",
  "GalaxyClusterRelation":[
   {"referenced_galaxy_cluster_uuid":"2e34237d-8574-43f6-aace-ae2915de8597","referenced_galaxy_cluster_type":"uses"},
   {"referenced_galaxy_cluster_uuid":"2e34237d-8574-43f6-aace-ae2915de8597","referenced_galaxy_cluster_type":"similar"}]}]}]}]}}`

func TestConvertExplainShowsClusterRelations(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"convert", "--explain", writeTemp(t, relationEvent)}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"\trelation\tuses\t\"APT29\" -> \"Spearphishing Attachment - T1566.001\"\t",
		"\texported\trelationship--",
		"\trelation\tsimilar\t\"APT29\" -> \"Spearphishing Attachment - T1566.001\"\t",
		"\tskipped\trelation_type\t",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
}
