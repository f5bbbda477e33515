// Package pusher owns delivery: one loop per sink takes batches from the sink's outbox in
// the store, paces them by the quotas the sink reports, sends them through the sink, retries
// what can succeed later, and commits each outcome to the outbox (accepted items
// acknowledged, rejected ones dead-lettered with the API's message, everything else kept
// queued). It follows the retry stage of alertmanager's notify pipeline: the integration
// (here a Sink) only says what one attempt did; the stage decides about waiting, retrying,
// counting and giving up.
//
// What the pusher owns, in one place each:
//   - batching: a batch leaves once Limits().MaxBatch objects are queued or the oldest has
//     waited Linger;
//   - pacing: Pacers, one sliding-window log per quota key shared by every sink reporting
//     the key (Sentinel's 100 requests per minute belong to an Entra identity, not to a
//     workspace); a throttling answer pauses every sink of the key;
//   - retry and backoff: a RetryError is retried without limit, after the wait the API asked
//     for (capped at MaxRetryAfter, with jitter) or an exponential backoff; nothing is
//     skipped;
//   - the metrics of delivery (listener_upload_retries_total by reason, accepted, revoked,
//     rejected, fatal errors, upload duration, relationships held back by Begin);
//   - committing outcomes to the outbox (store.Batch's AcceptAll, KeepAll, Reject).
//
// The pusher never decides what to send (the store's diff does), never speaks an API's wire
// format (the Sink does), and never drops an item: anything it cannot settle stays queued. A
// FatalError stops that sink loudly with its objects queued; the other sinks go on.
//
// # A second kind of sink
//
// Sink is the whole contract, so another API fits behind it without touching the loop. A
// Defender for Endpoint sink (package defender), for example:
//   - reports Limits{MaxBatch: 500} (its import call takes 500 indicators);
//   - reports its quotas per call type under its identity, e.g. Upserts: {Key:
//     "defender:<tenant>/<app>:import", Requests: 30, Per: time.Minute} and a second Quota
//     for the hourly limit, so the pacer enforces both windows;
//   - revokes by deletion: Limits.Revocations names the BatchDelete quotas, so the pusher
//     hands it batches of one kind and Send turns a batch of Object.Revoke items into one
//     BatchDelete call (the outbox must then hand out upserts and revocations apart, which
//     New refuses until that exists);
//   - classifies its own answers into Rejection, RetryError (429 with Retry-After, 5xx,
//     timeouts) and FatalError (401 after refresh, 403, a tenant cap it cannot fit under).
//
// Nothing in this package imports a sink package: the daemon wires a sentinel.Client (or a
// defender client) into New.
package pusher
