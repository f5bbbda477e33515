package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mispsentinel/listener/config"
	"github.com/mispsentinel/listener/store"
)

// DryRun is a scratch copy of the store for `listener sync --dry-run`: the run diffs against
// the real state (so it shows exactly what would be uploaded) but writes only to the copy. The
// copy lives in a temporary directory (not in memory: a store of a million indicators is a
// gigabyte) and is streamed from the real store, never buffered whole.
type DryRun struct {
	store *store.Store
	dir   string
}

// NewDryRun copies the store in cfg.Dir (if there is one) into a scratch store that diffs with
// the configured refresh window, as the daemon's own store does.
func NewDryRun(cfg config.Store, log *logrus.Logger) (*DryRun, error) {
	dir := cfg.Dir
	tmp, err := os.MkdirTemp("", "listener-dry-run-")
	if err != nil {
		return nil, fmt.Errorf("dry run: scratch directory: %w", err)
	}
	scratch, err := store.Open(tmp, store.Options{Logger: log, RefreshWindow: cfg.RefreshWindow})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("dry run: open scratch store: %w", err)
	}
	d := &DryRun{store: scratch, dir: tmp}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	real, err := store.Open(dir, store.Options{ReadOnly: true, Logger: log})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("dry run: open store %s read-only (is the daemon running?): %w", dir, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(real.Backup(pw)) }()
	err = scratch.Load(pr)
	pr.CloseWithError(err) // unblocks Backup if Load stopped early
	real.Close()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("dry run: copy store: %w", err)
	}
	return d, nil
}

// Store returns the scratch store to run against.
func (d *DryRun) Store() *store.Store { return d.store }

// Close discards the scratch store.
func (d *DryRun) Close() error {
	err := d.store.Close()
	if rerr := os.RemoveAll(d.dir); rerr != nil && err == nil {
		err = fmt.Errorf("dry run: remove scratch directory: %w", rerr)
	}
	return err
}

// dryRunDocument is what a dry run writes: for each sink, the objects it would upload, in order.
type dryRunDocument struct {
	DryRun bool         `json:"dry_run"`
	Sinks  []dryRunSink `json:"sinks"`
}

type dryRunSink struct {
	Name    string            `json:"name"`
	Upserts int               `json:"upserts"`
	Revokes int               `json:"revocations"`
	Objects []json.RawMessage `json:"objects"`
}

// Write drains every sink's scratch outbox into one JSON document.
func (d *DryRun) Write(w io.Writer, cfg *config.Config) error {
	doc := dryRunDocument{DryRun: true, Sinks: []dryRunSink{}}
	now := time.Now()
	for _, s := range cfg.Sinks {
		sink := dryRunSink{Name: s.Name, Objects: []json.RawMessage{}}
		for {
			b, err := d.store.Begin(s.Name, store.MaxBatch)
			if err != nil {
				return fmt.Errorf("read outbox of %s: %w", s.Name, err)
			}
			accepted := make([]int, len(b.Items))
			for i, it := range b.Items {
				accepted[i] = i
				sink.Objects = append(sink.Objects, json.RawMessage(it.Object))
				if it.Revoke {
					sink.Revokes++
				} else {
					sink.Upserts++
				}
			}
			if err := d.store.End(b, store.Outcome{Accepted: accepted}, now); err != nil {
				return fmt.Errorf("read outbox of %s: %w", s.Name, err)
			}
			if len(b.Items) == 0 {
				break
			}
		}
		doc.Sinks = append(doc.Sinks, sink)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
