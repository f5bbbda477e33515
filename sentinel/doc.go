// Package sentinel uploads batches of STIX objects to Microsoft Sentinel's threat-intelligence
// upload APIs (STIX objects, or the legacy upload-indicators API), authenticating with Entra ID
// through azidentity and pacing requests with one rate limiter per Entra identity. It owns the
// single classification of every upload outcome (accepted, rejected by index, retry after a
// wait, fatal misconfiguration) and the one retry loop, Deliver.
//
// It never queues, persists or decides what to send: the caller (the pusher) owns batching and
// acknowledgement.
package sentinel
