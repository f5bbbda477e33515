// Package bench measures every target of ARCHITECTURE.md ("Targets") in one run against the
// MISP and Sentinel simulators: conversion rate on one core, upload quota utilisation, publish →
// accepted latency, uploads per unchanged indicator, a full reconcile's wall time and peak RSS,
// and the idle daemon's RSS. It prints one table beside the reference tools' figures and writes
// the same as JSON.
//
// Measurements of a process's memory run the listener in a child process. The package only ever
// talks to loopback simulators it started itself and is never used on a production path.
package bench
