package store

import (
	"testing"
	"time"
)

func TestGraceMarks(t *testing.T) {
	s := openTest(t, Options{})
	const ev = "5f1c7f7e-2b7a-4d8e-9a51-0c3f4b6e9d21"
	if got, err := s.GraceMark(ev); err != nil || !got.IsZero() {
		t.Fatalf("GraceMark of an unmarked event = %v, %v; want the zero time", got, err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.SetGraceMark(ev, at); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GraceMark(ev); err != nil || !got.Equal(at) {
		t.Fatalf("GraceMark = %v, %v; want %v", got, err, at)
	}
	if err := s.DeleteGraceMark(ev); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GraceMark(ev); err != nil || !got.IsZero() {
		t.Fatalf("GraceMark after DeleteGraceMark = %v, %v; want the zero time", got, err)
	}
	if err := s.SetGraceMark("", at); err == nil {
		t.Error("SetGraceMark accepted an empty event uuid")
	}
}
