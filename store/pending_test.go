package store

import (
	"slices"
	"testing"
)

func TestPendingNoticesSurviveReopenAndKeepTheLastKind(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const a, b = "0a0a0a0a-0000-4000-8000-000000000001", "0b0b0b0b-0000-4000-8000-000000000002"
	if err := s.AddPendingNotices([]PendingNotice{{a, "published"}, {b, "published"}, {a, "deleted"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPendingNotices([]PendingNotice{{"", "published"}}); err == nil {
		t.Error("AddPendingNotices accepted an empty event uuid")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.PendingNotices()
	if err != nil {
		t.Fatal(err)
	}
	want := []PendingNotice{{a, "deleted"}, {b, "published"}}
	if !slices.Equal(got, want) {
		t.Fatalf("PendingNotices after reopen = %v; want %v (a delete after a publish wins)", got, want)
	}
	if err := s.DeletePendingNotice(a); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PendingNotices(); !slices.Equal(got, want[1:]) {
		t.Fatalf("PendingNotices after delete = %v; want %v", got, want[1:])
	}
}
