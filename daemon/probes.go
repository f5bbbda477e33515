package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/pusher"
	"github.com/mispsentinel/listener/reconcile"
)

// probes holds what /readyz and /healthz judge by.
type probes struct {
	mu sync.Mutex
	// mispAnswered is when MISP last answered the readiness probe; mispErr the last failure.
	mispAnswered time.Time
	mispErr      error
	// proberBeat is when the MISP prober loop last went round.
	proberBeat time.Time
	// storeReadSince is when the store read in flight started; zero when none is.
	storeReadSince time.Time
}

// needsMISP reports whether intake depends on MISP answering: with re-fetching on, a
// real-time notice is applied only after MISP returned the event.
func (d *Daemon) needsMISP() bool {
	return d.cfg.RefetchOnNotice() && (d.cfg.Webhook.Enabled || d.cfg.ZeroMQ.Enabled)
}

// runMISPProber asks MISP for its version every config.ReadyMISPProbeInterval until ctx
// ends, recording when it last answered (readiness). Only a daemon that needs MISP for intake
// runs it.
func (d *Daemon) runMISPProber(ctx context.Context) {
	t := time.NewTicker(config.ReadyMISPProbeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, config.ReadyMISPProbeInterval)
		_, err := d.misp.Version(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		d.probes.mu.Lock()
		d.probes.proberBeat = now
		wasDown := d.probes.mispErr != nil
		if err == nil {
			d.probes.mispAnswered, d.probes.mispErr = now, nil
		} else {
			d.probes.mispErr = err
		}
		d.probes.mu.Unlock()
		switch {
		case err != nil && !wasDown:
			// Logged once per outage: readiness names it while it lasts.
			d.log.WithField("error", pusher.OneLine(err.Error())).Warn("MISP does not answer; not ready for intake until it does (re-fetching is on)")
		case err == nil && wasDown:
			d.log.Info("MISP answers again; ready for intake")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// notReady names every reason the daemon cannot accept intake durably now, by component;
// empty when it is ready.
func (d *Daemon) notReady() map[string]string {
	out := map[string]string{}
	d.mu.Lock()
	started := d.ready
	d.mu.Unlock()
	if !started {
		out["daemon"] = "starting"
	}
	if err := d.store.Writable(); err != nil {
		out["store"] = pusher.OneLine(err.Error())
	}
	if d.needsMISP() {
		d.probes.mu.Lock()
		answered, lastErr := d.probes.mispAnswered, d.probes.mispErr
		d.probes.mu.Unlock()
		if age := time.Since(answered); answered.IsZero() || age > config.ReadyMISPMaxAge {
			msg := "no answer from MISP yet"
			if !answered.IsZero() {
				msg = fmt.Sprintf("no answer from MISP for %s", age.Round(time.Second))
			}
			if lastErr != nil {
				msg += ": " + pusher.OneLine(lastErr.Error())
			}
			out["misp"] = msg + " (re-fetching is on: a notice cannot be applied without MISP)"
		}
	}
	return out
}

// wedged names every long-running loop that stopped making progress, by component; empty
// when the process is alive. A slow or failing Microsoft or MISP never makes a loop wedged:
// the delivery loops keep going round while they retry, and only the daemon's own loops and
// the store are judged.
func (d *Daemon) wedged() map[string]string {
	out := map[string]string{}
	d.mu.Lock()
	started := d.ready
	d.mu.Unlock()
	if !started {
		return out // the loops start with Run; until then /readyz says "starting"
	}
	now := time.Now()
	for _, s := range d.sinks {
		if s.pusher == nil {
			continue
		}
		if beat := s.pusher.LastBeat(); !beat.IsZero() && now.Sub(beat) > config.LivenessBound {
			out["sink "+s.name] = fmt.Sprintf("delivery loop made no progress for %s", now.Sub(beat).Round(time.Second))
		}
	}
	if d.needsMISP() {
		d.probes.mu.Lock()
		beat := d.probes.proberBeat
		d.probes.mu.Unlock()
		if !beat.IsZero() && now.Sub(beat) > config.LivenessBound+config.ReadyMISPProbeInterval {
			out["misp prober"] = fmt.Sprintf("made no progress for %s", now.Sub(beat).Round(time.Second))
		}
	}
	if err := d.storeResponsive(now); err != nil {
		out["store"] = err.Error()
	}
	return out
}

// storeResponsive starts a small store read unless one is in flight, and fails when the one
// in flight has not returned within config.LivenessBound (Badger wedged). It never blocks.
func (d *Daemon) storeResponsive(now time.Time) error {
	d.probes.mu.Lock()
	defer d.probes.mu.Unlock()
	if since := d.probes.storeReadSince; !since.IsZero() {
		if now.Sub(since) > config.LivenessBound {
			return fmt.Errorf("a store read has not returned for %s", now.Sub(since).Round(time.Second))
		}
		return nil
	}
	d.probes.storeReadSince = now
	go func() {
		_, _ = d.store.Watermark(reconcile.WatermarkFull) // the answer does not matter, returning does
		d.probes.mu.Lock()
		d.probes.storeReadSince = time.Time{}
		d.probes.mu.Unlock()
	}()
	return nil
}

// probeAnswer writes a probe's JSON: {"status":"ok"} (or ready) with 200, or the problems by
// component with 503.
func probeAnswer(w http.ResponseWriter, ok string, problems map[string]string, bad string) {
	w.Header().Set("Content-Type", "application/json")
	if len(problems) == 0 {
		_, _ = fmt.Fprintf(w, `{"status":%q}`, ok)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(struct {
		Status string            `json:"status"`
		Reason map[string]string `json:"reasons"`
	}{bad, problems})
}

// readiness is the webhook's intake gate: started and the store writable. MISP is not asked
// here: the handler's own re-fetch fails (503) when MISP does not answer.
func (d *Daemon) readiness() error {
	d.mu.Lock()
	started := d.ready
	d.mu.Unlock()
	if !started {
		return errors.New("starting")
	}
	return d.store.Writable() // a full disk refuses intake: not ready for more
}
