// Package defender is the client of Microsoft Defender for Endpoint's indicator API (custom
// IoCs): import in batches of at most 500, batch delete, and the paged list used for
// read-back and for `check`. It authenticates the same Entra identities as package sentinel
// (same azidentity credentials and token cache, MDE's own audience), paces each call type of
// each identity with its own limiter, and owns the one classification of every outcome
// (accepted, failed per indicator with MDE's reason, retry after a wait, misconfiguration).
// It also owns the mapping of the listener's converted indicators to MDE indicators and the
// pure ranking of candidates for the tenant's 15,000-indicator cap.
//
// It never queues, persists, or retries: the caller (the pusher) owns batching, the retry
// loop and acknowledgement, and the store owns the budget's state.
package defender
