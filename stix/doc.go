// Package stix turns one MISP event into the STIX 2.1 objects a Sentinel workspace should hold
// for it: one indicator per exported attribute (or attribute component) and the identity of the
// event's creator organisation, plus a typed decision for every attribute that explains why it
// was or was not exported. With Options.Context, galaxy clusters become attack-pattern and
// threat-actor objects with indicates relationships from the indicators (context.go), with a
// decision for every cluster. It owns the type table, pattern building and escaping, value
// normalisation, deterministic ids, TLP, confidence, kill chain, labels and expiry.
//
// It never performs I/O and never reads the clock: the current time is an argument of Convert.
package stix
