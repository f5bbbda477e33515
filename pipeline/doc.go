// Package pipeline is the one funnel every path into the system ends in: "here is the full
// current content of MISP event E" or "event E is gone". For each sink it converts the event
// with that sink's options and hands the desired objects to the store, whose diff turns them
// into the minimal set of uploads; the real-time listeners, the reconciler and `listener sync`
// all call it, so they cannot disagree. It defines what every real-time source hands it (Notice,
// Handler, and the GapFunc through which a source reports what it may have missed), so that no
// source kind is special to it.
//
// The pipeline never uploads and never searches MISP on its own initiative: the only MISP call
// it makes is the re-fetch of notified events through restSearch when the event filters can
// only be applied by MISP (filter parity for the real-time path). Notices wait in a uuid-keyed
// queue; a bounded number of fetchers each re-fetch up to a batch of waiting events in one
// request, and one event's notices take effect in order (queue.go).
package pipeline
