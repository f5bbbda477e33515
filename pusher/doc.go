// Package pusher drains each sink's outbox into Sentinel: one loop per sink takes a batch of at
// most BatchSize queued objects from the store once it is full or its oldest item has waited
// Linger, hands it to a sentinel.Uploader through sentinel.Deliver, and commits the outcome
// (accepted items acknowledged, rejected ones dead-lettered with Sentinel's message).
//
// The pusher never decides what to send (the store's diff does) and never talks HTTP itself
// (the sentinel package does). It never drops an item: anything it cannot settle stays queued.
package pusher
