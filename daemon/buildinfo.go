package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mispsentinel/listener/internal/version"
)

// newBuildInfo returns listener_build_info, the constant 1 labelled with what the binary knows
// about its build, so dashboards can show and join on the running version.
func newBuildInfo() prometheus.Collector {
	info := version.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "listener_build_info",
		Help:        "Always 1; the labels say which build of the listener is running.",
		ConstLabels: prometheus.Labels{"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion},
	})
	g.Set(1)
	return g
}
