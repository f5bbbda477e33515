// Package sentinel simulates Microsoft Entra ID and the Microsoft Sentinel threat-intelligence
// upload APIs (STIX objects and legacy upload-indicators) over TLS on a loopback address, with
// the documented validation, per-record errors, upsert and revocation, the per-identity request
// quota and injectable faults, for tests, the demo and benchmarks.
//
// It records everything it accepted so tests can compare it with what they sent. It never
// talks to the real services and is never used on a production path.
package sentinel
