// Package stixtest holds the conversion options tests and benchmarks outside package stix
// convert with. They are a fixed fixture, not the product's defaults: the daemon converts with
// the options config/defaults.go and the configuration give it (daemon.ConversionOptions). It
// is never imported by a product path.
package stixtest

import "github.com/mispsentinel/listener/stix"

// Options returns the fixture: the sentinel profile, lifetimes of 50 days (180 for IPs and
// domains, 365 for URLs) counted from now, confidence 50, threat type WatchList and no default
// TLP marking.
func Options() stix.Options {
	return stix.Options{
		Profile: stix.ProfileSentinel, ExpiryStart: stix.ExpiryFromNow, DefaultConfidence: 50, DefaultThreatType: "WatchList",
		DaysToExpire:       50,
		DaysToExpireByType: map[string]int{"ipv4-addr": 180, "ipv6-addr": 180, "domain-name": 180, "url": 365},
	}
}
