// Package lab starts a complete test bench on loopback: the MISP simulator (REST and a ZeroMQ
// publisher), the Entra ID and Sentinel simulator, and a listener configuration file pointing at
// both, with the simulators' CA certificates written beside it. It also computes the state
// Sentinel should end in, directly from MISP's events, so tests, `listener demo`, the
// benchmarks and the soak can compare it with what the Sentinel simulator holds.
//
// The lab is never used on a production path.
package lab
