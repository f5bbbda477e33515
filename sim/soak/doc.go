// Package soak runs the listener daemon, as a child process, against the MISP and Sentinel
// simulators while everything that can go wrong does: MISP edits, deletes and republishes
// continuously, Sentinel answers 5xx, slowly and with 429 storms, the ZeroMQ publisher restarts
// and the daemon is SIGKILLed and restarted. At the end it checks that Sentinel holds exactly
// the indicators MISP's events yield.
//
// The soak is a test harness; it never runs on a production path and never talks to anything
// but loopback simulators it started itself.
package soak
