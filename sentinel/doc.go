// Package sentinel speaks Microsoft Sentinel's threat-intelligence upload APIs (STIX
// objects, or the legacy upload-indicators API): Client is the pusher.Sink of a Sentinel
// workspace. It owns what is Sentinel's and nothing else: building upload requests,
// authenticating with Entra ID through azidentity (one forced token refresh after a 401),
// the single classification of every answer (classify: accepted, rejected by index, retry
// after a wait, fatal misconfiguration), and splitting a batch Sentinel refuses whole. It
// reports Sentinel's limits (100 objects per request, 100 requests per minute per Entra
// identity) to the pusher.
//
// Reader is the read-back client (separate from the delivery path): it lists what a
// workspace holds through the management API, the stable queryIndicators or the preview
// STIX-object query, page by page, filtered by source system, id or observable value. No
// pusher drives it, so it reserves the identity's read quota in the shared pusher.Pacers
// before every request, pauses that quota for the wait a 429 asks (capped), and retries a
// page after 5xx and network errors itself.
//
// The upload client never queues, persists, paces, waits or retries: the pusher owns the
// delivery loop.
package sentinel
