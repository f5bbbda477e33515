// Package listener owns the daemon's real-time sources: a ZeroMQ subscriber to MISP's publisher,
// with its own reconnect supervisor and heartbeat watchdog, and the HTTP endpoint that receives
// MISP workflow webhooks. Each source turns what MISP sends into a pipeline.Notice (event
// published, event deleted) for a pipeline.Handler, and the ZeroMQ source reports every period
// in which messages may have been missed so the reconciler can catch up. The notice types
// belong to the funnel (package pipeline), so that the pipeline depends on no source.
//
// It never converts, stores or uploads anything itself: durability is the Handler's job, and the
// webhook acknowledges a notice only after the Handler says it is durable.
package listener
