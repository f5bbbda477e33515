// Package daemon assembles the listener from its configuration: the store, one Sentinel client
// and pusher per sink (sharing a rate limiter per Entra identity), the pipeline, the MISP client
// and reconciler, the ZeroMQ and webhook sources, and the metrics and health endpoints. Run is
// the `listener run` daemon; Sync is the one-shot `listener sync`.
//
// The daemon owns lifecycles and wiring only: it never converts, diffs, uploads or parses MISP
// data itself, and it keeps one failing sink from stopping the others.
package daemon
