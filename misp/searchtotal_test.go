package misp_test

import (
	"context"
	"testing"

	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

// TestWithSearchTotalReportsTheCountBeforeEachPage: a progress display learns MISP's
// X-Result-Count from the first page on, before the page is handled.
func TestWithSearchTotalReportsTheCountBeforeEachPage(t *testing.T) {
	sim := newSim(t, simmisp.Options{}, 25)
	c := newClient(t, misp.ClientConfig{URL: sim.URL()})
	var totals []int
	handled := 0
	ctx := misp.WithSearchTotal(context.Background(), func(total int) {
		if len(totals) != handled {
			t.Errorf("report(%d) after %d pages handled and %d reports", total, handled, len(totals))
		}
		totals = append(totals, total)
	})
	stats, err := c.SearchEvents(ctx, map[string]any{"published": true}, 10, func([]*misp.Event) error {
		handled++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != handled || handled < 2 {
		t.Errorf("%d reports for %d pages, want one per page", len(totals), handled)
	}
	for _, total := range totals {
		if total != stats.Total || total < 20 {
			t.Errorf("reported %d, X-Result-Count was %d", total, stats.Total)
		}
	}
}
