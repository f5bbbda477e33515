// Package sentinel simulates Microsoft Entra ID and the Microsoft Sentinel threat-intelligence
// upload APIs (STIX objects and legacy upload-indicators) over TLS on a loopback address, with
// the documented validation, per-record errors, upsert and revocation, the per-identity request
// quota and injectable faults, for tests, the demo and benchmarks. The management (ARM)
// read-back routes (queryIndicators, indicators/{name}, the preview STIX-object query and
// count, DELETE) serve the same stored objects through a configurable visibility lag, with
// paging and injectable 429s; DeleteObject and AlterObject change stored objects behind the
// listener's back.
//
// It records everything it accepted so tests can compare it with what they sent. It never
// talks to the real services and is never used on a production path.
package sentinel
