package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/mispsentinel/listener/config"
)

// Both log formats stamp lines in RFC 3339 with milliseconds.
func TestLogTimestampsHaveMilliseconds(t *testing.T) {
	for format, re := range map[string]*regexp.Regexp{
		"json": regexp.MustCompile(`"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)"`),
		"text": regexp.MustCompile(`time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)"`),
	} {
		var out bytes.Buffer
		log, err := newLogger(config.Log{Level: "info", Format: format}, &out)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello")
		if !re.MatchString(out.String()) {
			t.Errorf("%s line has no RFC 3339 timestamp with milliseconds: %s", format, out.String())
		}
	}
}
