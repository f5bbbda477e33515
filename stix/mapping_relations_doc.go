package stix

import (
	"fmt"
	"sort"
	"strings"
)

// ClusterRelationTable renders the cluster relation table of docs/MAPPING.md from the code:
// every relation type between galaxy clusters that becomes a relationship, with the STIX
// types of source and target it is exported between.
func ClusterRelationTable() string {
	types := ClusterRelationTypes()
	names := make([]string, 0, len(types))
	for t := range types {
		names = append(names, t)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| MISP relation type | `relationship_type` | exported between (source -> target) |\n|---|---|---|\n")
	for _, t := range names {
		pairs := types[t]
		sort.Strings(pairs)
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", t, t, "`"+strings.Join(pairs, "`, `")+"`")
	}
	b.WriteString("| any other (`similar`, `variant-of`, `mitigates`, ...) | - | not exported (`relation_type`) |\n")
	return b.String()
}
