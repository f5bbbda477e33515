package store

import (
	"fmt"
	"testing"
)

func TestSinkRecordsSurviveReopenAndStayInTheirScope(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	puts := map[string][]byte{}
	for i := range 2500 {
		puts[fmt.Sprintf("k%04d", i)] = []byte(fmt.Sprint(i))
	}
	if err := s.PutSinkRecords("tenant-a", puts, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSinkRecords("tenant-ab", map[string][]byte{"k0000": []byte("other")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSinkRecords("tenant-a", map[string][]byte{"k0001": []byte("changed")}, []string{"k0002", "missing"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSinkRecords("tenant-a", map[string][]byte{"": nil}, nil); err == nil {
		t.Error("an empty key was accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]string{}
	if err := s.SinkRecords("tenant-a", func(k string, v []byte) error { got[k] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2499 || got["k0001"] != "changed" || got["k0000"] != "0" || got["k2499"] != "2499" {
		t.Errorf("read back %d records, k0000=%q k0001=%q", len(got), got["k0000"], got["k0001"])
	}
	if _, ok := got["k0002"]; ok {
		t.Error("deleted record still there")
	}
	sinks, err := s.Sinks()
	if err != nil || len(sinks) != 0 {
		t.Errorf("sink records show up as sinks: %v %v", sinks, err)
	}
}
