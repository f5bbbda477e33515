// Package reconcile keeps Sentinel equal to MISP when the real-time path missed something. A
// full run re-runs the user's filtered events/restSearch page by page, applies every event
// through the pipeline (which uploads only what changed and refreshes expiring indicators) and
// then checks the events synced before that the search no longer returned: gone from MISP means
// revoke now, present but outside the filters means revoke once a grace period (kept in the
// store, so it also spans one-shot `listener sync` runs) is over. An incremental run (also the
// start-up run and every catch-up) lists the filters' events with restSearch metadata only,
// fetches in uuid lists only those whose MISP version or content key differs from the stamp the
// store keeps of their last full apply, and settles the events missing from the listing as a
// full run does. Run schedules full runs (interval or cron expression), incremental runs, and a
// catch-up whenever a real-time source reports a gap. An event MISP returns that cannot be
// decoded is skipped, counted, never revoked for it, and tried again alone by the next run.
//
// The reconciler never converts or diffs itself (the pipeline and the store do) and never
// uploads (the pushers do). An incomplete search never revokes anything.
package reconcile
