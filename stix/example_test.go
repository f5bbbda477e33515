package stix_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

// ExampleConvert converts a MISP event with three attributes for one sink: the domain becomes
// an indicator, the attribute with to_ids off and the type the sink filters out get a reason.
// Convert is pure: the same event, options and now always give the same objects.
func ExampleConvert() {
	ts := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	ev := &misp.Event{
		UUID: "5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d21", Info: "phishing wave", Date: "2026-10-01",
		Timestamp: ts, Orgc: misp.Org{Name: "CIRCL", UUID: "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
		Tags: []misp.Tag{{Name: "tlp:green"}},
		Attributes: []misp.Attribute{
			{UUID: "c3a7c1a2-0d5e-4f7a-9b1c-2d3e4f5a6b7c", Type: "domain", Category: "Network activity", Value: "Evil.Example", ToIDS: true, Timestamp: ts},
			{UUID: "0b7e3c52-9d4a-4f61-8e2b-1a3c5d7e9f02", Type: "ip-dst", Category: "Network activity", Value: "203.0.113.5", ToIDS: false, Timestamp: ts},
			{UUID: "8d4f2a1b-6c3e-4b5a-9f7d-1e2c3b4a5d6e", Type: "md5", Category: "Payload delivery", Value: "d41d8cd98f00b204e9800998ecf8427e", ToIDS: true, Timestamp: ts},
		},
	}
	opts := stix.Options{
		Profile:           stix.ProfileSentinel,
		DaysToExpire:      50,
		ExpiryStart:       stix.ExpiryFromNow,
		DefaultConfidence: 50,
		DefaultThreatType: "WatchList",
		Filter:            stix.Filter{ExcludeTypes: []string{"md5"}},
	}
	if err := opts.Validate(); err != nil {
		fmt.Println(err)
		return
	}

	res := stix.Convert(ev, opts, ts)
	for _, o := range res.Objects {
		var body struct {
			Pattern    string   `json:"pattern"`
			ValidUntil string   `json:"valid_until"`
			Markings   []string `json:"object_marking_refs"`
		}
		if err := json.Unmarshal(o.Body, &body); err != nil {
			fmt.Println(err)
			return
		}
		if o.Type == "indicator" {
			fmt.Println(o.ID, body.Pattern, "until", body.ValidUntil, "markings", len(body.Markings))
		} else {
			fmt.Println(o.Type, "shared:", o.Shared)
		}
	}
	for _, d := range res.Decisions {
		if d.Reason != "" {
			fmt.Printf("%s %s: %s (%s)\n", d.Type, d.Value, d.Reason, d.Detail)
		}
	}
	// Output:
	// identity shared: true
	// indicator--c3a7c1a2-0d5e-4f7a-9b1c-2d3e4f5a6b7c [domain-name:value = 'evil.example'] until 2026-11-20T12:00:00.000Z markings 1
	// ip-dst 203.0.113.5: not_ids (to_ids is off)
	// md5 d41d8cd98f00b204e9800998ecf8427e: filtered_type (type "md5" is filtered out for this sink)
}
