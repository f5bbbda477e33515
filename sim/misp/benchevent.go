package misp

import (
	"bytes"
	"fmt"
)

// ConversionBenchmarkEvent returns a MISP event (misp_json layout) with n attributes cycling the types of
// spec/misp-stix-mapping.md §1's speed test: ip-dst, domain, url, md5, sha256,
// filename|sha256 and email-src, all to_ids, one in ten tagged tlp:green. The conversion
// benchmarks (stix's BenchmarkConvert and `listener bench`) measure on it.
func ConversionBenchmarkEvent(n int) []byte { return conversionBenchmarkEvent(n, 0) }

func conversionBenchmarkEvent(n, eventClusters int) []byte {
	galaxies := eventClusters > 0
	var b bytes.Buffer
	b.WriteString(`{"Event":{"id":"4711","uuid":"5f3c1a2b-1111-4222-8333-444455556666","info":"benchmark event","date":"2026-11-01","timestamp":"1793500000","published":true,"publish_timestamp":"1793500000","Orgc":{"id":"1","name":"CIRCL","uuid":"55f6ea5e-2c60-40e5-964f-47a8950d210f"},"Tag":[{"name":"misp:confidence-level=\"usually-confident\""}],"Attribute":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		var typ, val string
		switch i % 7 {
		case 0:
			typ, val = "ip-dst", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		case 1:
			typ, val = "domain", fmt.Sprintf("host%d.example.com", i)
		case 2:
			typ, val = "url", fmt.Sprintf("https://host%d.example.com/path/index.php?id=%d", i, i)
		case 3:
			typ, val = "md5", fmt.Sprintf("%032x", i)
		case 4:
			typ, val = "sha256", fmt.Sprintf("%064x", i)
		case 5:
			typ, val = "filename|sha256", fmt.Sprintf("sample%d.exe|%064x", i, i)
		case 6:
			typ, val = "email-src", fmt.Sprintf("sender%d@example.com", i)
		}
		fmt.Fprintf(&b, `{"id":"%d","type":"%s","category":"Network activity","to_ids":true,"uuid":"%08x-0000-4000-8000-%012x","event_id":"4711","distribution":"5","timestamp":"1793500000","comment":"","sharing_group_id":"0","deleted":false,"disable_correlation":false,"object_id":"0","object_relation":null,"first_seen":null,"last_seen":null,"value":"%s"`, i, typ, i, i, val)
		if i%10 == 0 {
			b.WriteString(`,"Tag":[{"id":"3","name":"tlp:green","colour":"#33FF00","exportable":true,"local":false}]`)
		}
		if galaxies && i%attributeGalaxyEvery == 0 {
			b.WriteString(`,"Galaxy":[`)
			b.WriteString(benchTechniques[(i/attributeGalaxyEvery)%len(benchTechniques)])
			b.WriteByte(']')
		}
		b.WriteByte('}')
	}
	b.WriteString(`],"Object":[]`)
	if galaxies {
		b.WriteString(`,"Galaxy":[`)
		for i, g := range benchEventGalaxies[:min(eventClusters, len(benchEventGalaxies))] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(g)
		}
		b.WriteByte(']')
	}
	b.WriteString(`}}`)
	return b.Bytes()
}
