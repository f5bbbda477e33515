package stix

// testOptions are the options this package's tests convert with: the sentinel profile,
// misp2sentinel's lifetimes counted from now, confidence 50, threat type WatchList, no default
// TLP. The daemon's own values come from config/defaults.go.
func testOptions() Options {
	return Options{
		Profile:            ProfileSentinel,
		DaysToExpire:       50,
		DaysToExpireByType: map[string]int{"ipv4-addr": 180, "ipv6-addr": 180, "domain-name": 180, "url": 365},
		ExpiryStart:        ExpiryFromNow,
		DefaultConfidence:  50,
		DefaultThreatType:  "WatchList",
	}
}
