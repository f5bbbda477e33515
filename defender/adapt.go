package defender

import (
	"github.com/mispsentinel/listener/misp"
	"github.com/mispsentinel/listener/stix"
)

// Adapt returns the conversion step of a Defender sink: it replaces the converted STIX
// objects with the sink's candidates (Map) and turns the decision of every attribute none of
// whose indicators Defender can express into a skip with reason unsupported_by_sink, so that
// metrics and `convert --explain` count them like every other skip.
func Adapt(opts MapOptions) func(ev *misp.Event, res stix.Result) stix.Result {
	return func(ev *misp.Event, res stix.Result) stix.Result {
		cands, skips := Map(ev, res, opts)
		out := stix.Result{Objects: make([]stix.Object, len(cands)), Decisions: res.Decisions}
		for i, c := range cands {
			out.Objects[i] = c.Object
		}
		if len(skips) == 0 {
			return out
		}
		skipped := make(map[string]Skip, len(skips))
		for _, s := range skips {
			skipped[s.ObjectID] = s
		}
		out.Decisions = make([]stix.Decision, len(res.Decisions))
		for i, d := range res.Decisions {
			kept := d.Exported[:0:0]
			var detail string
			for _, id := range d.Exported {
				if s, ok := skipped[id]; ok {
					detail = s.Detail
					continue
				}
				kept = append(kept, id)
			}
			if len(d.Exported) > 0 && len(kept) == 0 {
				d.Reason, d.Detail = stix.SkipUnsupportedBySink, detail
			} else if len(kept) < len(d.Exported) {
				d.Detail = detail
			}
			d.Exported = kept
			out.Decisions[i] = d
		}
		return out
	}
}
