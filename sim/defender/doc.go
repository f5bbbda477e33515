// Package defender simulates Microsoft Defender for Endpoint's indicator API (import,
// submit, list, delete, BatchDelete) over TLS on a loopback address, authenticated by the
// Entra of sim/sentinel (one simulated tenant serves both APIs, as in Azure), with the
// validation, upsert identity, per-tenant cap (both behaviours the spec leaves open),
// per-call-type rate limits with 429 and the faults of shared/spec/defender-api.md §13, for
// tests, the demo and benchmarks.
//
// It records what it holds so tests can compare it with what they sent. It never talks to
// the real services and is never used on a production path.
package defender
