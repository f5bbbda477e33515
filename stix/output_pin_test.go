package stix

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mispsentinel/listener/internal/sharedref"
	"github.com/mispsentinel/listener/misp"
	simmisp "github.com/mispsentinel/listener/sim/misp"
)

var updateOutputPin = flag.Bool("update-output", false, "rewrite testdata/output.sha256, the digests TestOutputPinned compares conversions with")

// pinOptions are the option sets TestOutputPinned converts every input with: each profile,
// every context mode and level, filters, markings, composite modes and the local-tag and
// expiry switches.
func pinOptions() map[string]Options {
	sentinel := testOptions()

	context := testOptions()
	context.Context = ContextAll
	context.MISPURL = "https://misp.example.org/"
	context.DefaultTLP = "tlp:green"

	mispStix := testOptions()
	mispStix.Profile = ProfileMISPSTIX
	mispStix.Context = ContextAttackPatterns
	mispStix.ContextLevels = ContextLevelsAttribute
	mispStix.ExportPatternLanguages = PatternLanguages
	mispStix.IncludeLocalTags = true
	mispStix.ExpiryStart = ExpiryFromValidFrom

	filtered := testOptions()
	filtered.Context = ContextAll
	filtered.DefaultTLP = "tlp:amber"
	filtered.Filter.MaxTLP = "tlp:green"
	filtered.Filter.MinConfidence = 60
	filtered.LabelDenyList = []string{"misp"}
	filtered.Composite = map[string]Composite{"filename|sha256": CompositeFirst, "domain|ip": CompositeCompound}
	filtered.DaysToExpire = 0

	return map[string]Options{"sentinel": sentinel, "context": context, "misp-stix": mispStix, "filtered": filtered}
}

// pinNow is the conversion time of TestOutputPinned.
var pinNow = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// digestConversion writes everything Convert and Bundle return for events under opts into h:
// every object field (body included), the bundle, each decision and context decision.
func digestConversion(h *bytes.Buffer, events []*misp.Event, opts Options) {
	for _, ev := range events {
		res := Convert(ev, opts, pinNow)
		for _, o := range res.Objects {
			fmt.Fprintf(h, "%q %q %q %q %s %t %q %q %q\n", o.ID, o.Type, o.EventUUID, o.Hash,
				o.ValidUntil.Format(time.RFC3339Nano), o.Shared, o.SourceRef, o.TargetRef, o.Body)
		}
		h.Write(Bundle(res.Objects))
		for _, d := range res.Decisions {
			fmt.Fprintf(h, "%+v\n", d)
		}
		for _, d := range res.Context {
			fmt.Fprintf(h, "%+v\n", d)
		}
	}
}

// pinInput is one input of TestOutputPinned: the events of one or more MISP JSON documents.
type pinInput struct {
	name   string
	events []*misp.Event
	errs   []string // documents that do not decode: their errors are pinned too
}

func pinInputs(t *testing.T) []pinInput {
	decode := func(name string, docs ...[]byte) pinInput {
		in := pinInput{name: name}
		for _, d := range docs {
			evs, err := misp.DecodeEvents(d)
			if err != nil {
				in.errs = append(in.errs, err.Error())
				continue
			}
			in.events = append(in.events, evs...)
		}
		return in
	}
	inputs := []pinInput{
		decode("bench-plain", simmisp.ConversionBenchmarkEvent(1500)),
		decode("bench-galaxies-1", simmisp.ConversionBenchmarkEventWithGalaxies(1500, 1)),
		decode("bench-galaxies-3", simmisp.ConversionBenchmarkEventWithGalaxies(1500, 3)),
	}
	seeds, _ := filepath.Glob(filepath.Join("testdata", "seeds", "*.json"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, decode("seed-"+strings.TrimSuffix(filepath.Base(s), ".json"), data))
	}
	root := filepath.Join(sharedref.ModuleRoot(t), "..", "shared", "corpus")
	for _, dir := range []string{"events", "misp-stix"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.json"))
		more, _ := filepath.Glob(filepath.Join(root, dir, "*", "*.json"))
		files = append(files, more...)
		if len(files) == 0 {
			continue
		}
		slices.Sort(files)
		docs := make([][]byte, 0, len(files))
		for _, f := range files {
			if strings.HasSuffix(f, ".stix21.json") || strings.HasSuffix(f, ".stix20.json") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, data)
		}
		inputs = append(inputs, decode("corpus-"+dir, docs...))
	}
	return inputs
}

// TestOutputPinned pins every byte conversion produces (objects, hashes, bundles, decisions)
// for the benchmark events, the seeds and, when the reference folder is present, the
// corpus, under several option sets: a change of output shows as a changed digest. Speed
// work must leave it green; a deliberate change of output rewrites the digests with
// `go test ./stix -run TestOutputPinned -update-output` (and says so in the changelog: the
// store re-uploads objects whose hash changed).
func TestOutputPinned(t *testing.T) {
	const golden = "testdata/output.sha256"
	got := map[string]string{}
	opts := pinOptions()
	for _, in := range pinInputs(t) {
		for name, o := range opts {
			var h bytes.Buffer
			for _, e := range in.errs {
				h.WriteString(e + "\n")
			}
			digestConversion(&h, in.events, o)
			sum := sha256.Sum256(h.Bytes())
			got[in.name+"/"+name] = hex.EncodeToString(sum[:])
		}
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if *updateOutputPin {
		var b strings.Builder
		b.WriteString("# Digests of conversion output (TestOutputPinned); regenerate with -update-output.\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", got[k], k)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, key, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s: malformed line %q", golden, line)
		}
		want[key] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("%s: no pinned digest (regenerate with -update-output if the case is new)", k)
		case w != got[k]:
			t.Errorf("%s: conversion output changed (digest %s, pinned %s)", k, got[k], w)
		}
	}
	missing := 0
	for k := range want {
		if _, ok := got[k]; !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Logf("%d pinned cases not run (reference corpus absent?)", missing)
	}
}
