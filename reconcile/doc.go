// Package reconcile keeps Sentinel equal to MISP when the real-time path missed something. A
// full run re-runs the user's filtered events/restSearch page by page, applies every event
// through the pipeline (which uploads only what changed and refreshes expiring indicators) and
// then checks the events synced before that the search no longer returned: gone from MISP means
// revoke now, present but outside the filters means revoke once a grace period (kept in the
// store, so it also spans one-shot `listener sync` runs) is over. An incremental run searches
// only events modified or published since the watermark (the newest MISP timestamp the last
// run saw, never ahead of the local clock) minus an overlap. Run schedules full
// runs (interval or cron expression), incremental runs, and a catch-up whenever a real-time
// source reports a gap.
//
// The reconciler never converts or diffs itself (the pipeline and the store do) and never
// uploads (the pushers do). An incomplete search never revokes anything.
package reconcile
