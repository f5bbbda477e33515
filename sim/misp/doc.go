// Package misp simulates the parts of a MISP server the listener talks to: the REST API
// (events/restSearch with its filters, paging and X-Result-Count, events/view, servers/getVersion,
// raw-key authentication with MISP's error bodies), the ZeroMQ publisher's framing and the
// workflow webhook's "MISP core format" body, plus a generator of realistic events.
//
// It exists for tests, the demo and benchmarks: it holds events in memory, serves them only on
// loopback, and never stands in for a production path. Importers alias it simmisp.
package misp
