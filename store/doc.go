// Package store is the listener's durable memory in Badger: per sink (Sentinel workspace) the
// state of every indicator it was sent, the indicator ids each MISP event yielded, a FIFO outbox
// of stamped STIX objects waiting for upload, dead letters Sentinel refused, and reconciler
// watermarks. It owns the desired-state diff that turns "event E now yields these objects" into
// the minimal set of upserts and revocations, and the reference counts of shared context
// objects (attack patterns, threat actors): one is revoked when the last live relationship of
// the sink that targets it is (refs.go), and a relationship is handed out only after the
// objects it names reached the sink.
//
// The store never talks HTTP, never converts MISP data and never decides when to upload: the
// pusher drains the outbox with Begin/End, the reconciler and listeners feed it with Apply.
package store
