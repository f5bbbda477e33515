package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/store"
)

// storeCollector reads each sink's outbox depth, dead letters and live objects from the store
// at scrape time, so the figures are the store's own and never drift.
type storeCollector struct {
	store *store.Store
	sinks []string

	depth, dead, live, lastAccepted, free *prometheus.Desc
}

func newStoreCollector(st *store.Store, cfg *config.Config) *storeCollector {
	c := &storeCollector{store: st}
	for _, s := range cfg.Sinks {
		c.sinks = append(c.sinks, s.Name)
	}
	c.depth = prometheus.NewDesc("listener_outbox_depth", "Objects queued for upload, per sink.", []string{"sink"}, nil)
	c.dead = prometheus.NewDesc("listener_dead_letters", "Objects Sentinel rejected that wait in the dead-letter list, per sink.", []string{"sink"}, nil)
	c.live = prometheus.NewDesc("listener_live_objects", "Objects exported and not revoked, per sink.", []string{"sink"}, nil)
	c.lastAccepted = prometheus.NewDesc("listener_last_upload_timestamp_seconds", "Unix time of the last batch Sentinel accepted, per sink.", []string{"sink"}, nil)
	c.free = prometheus.NewDesc("listener_store_free_bytes", "Free bytes on the store's file system; below the store's reserve new data is refused with \"disk full\".", nil, nil)
	return c
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.dead
	ch <- c.live
	ch <- c.lastAccepted
	ch <- c.free
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if free, err := c.store.FreeBytes(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.free, err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(free))
	}
	for _, sink := range c.sinks {
		st, err := c.store.Stats(sink)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.depth, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.OutboxDepth), sink)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.DeadLetters), sink)
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(st.Live), sink)
		last := 0.0
		if !st.LastAccepted.IsZero() {
			last = float64(st.LastAccepted.Unix())
		}
		ch <- prometheus.MustNewConstMetric(c.lastAccepted, prometheus.GaugeValue, last, sink)
	}
}
