// Package misp owns the MISP data model and its tolerant decoding: events, attributes, objects,
// tags, organisations and galaxies exactly as MISP emits them over REST (restSearch, view),
// ZeroMQ (misp_json) and workflow webhooks, with ids and timestamps as strings or numbers and
// booleans as true/false, "0"/"1" or 0/1. It also holds the REST client used for reconciliation.
//
// It never converts events to STIX (package stix does that) and never decides what is exported.
package misp
