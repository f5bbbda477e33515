package store

import (
	"testing"
	"time"
)

// TestEventStamps: stamps round-trip, absent events are absent, forget deletes.
func TestEventStamps(t *testing.T) {
	s := openTest(t, Options{})
	at := time.Unix(1700000000, 0).UTC()
	key := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	if err := s.SetEventStamps(map[string]EventStamp{"e1": {Version: at, Key: key}, "e2": {Version: at.Add(time.Second)}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.EventStamps([]string{"e1", "e2", "e3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["e1"].Version.Equal(at) || got["e1"].Key != key || !got["e2"].Version.Equal(at.Add(time.Second)) {
		t.Fatalf("stamps %+v", got)
	}
	if err := s.SetEventStamps(nil, []string{"e1", "never"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.EventStamps([]string{"e1", "e2"}); len(got) != 1 {
		t.Fatalf("after forgetting e1: %+v", got)
	}
}
