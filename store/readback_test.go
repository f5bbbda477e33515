package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mispsentinel/listener/stix"
)

func TestIndicatorsSentObjectAndResend(t *testing.T) {
	s := openTest(t, Options{})
	until := t0.Add(90 * 24 * time.Hour)
	if _, err := s.Apply("ws", "ev1", []stix.Object{indicator(indicatorID(1), "a", until), indicator(indicatorID(2), "b", until)}, t0); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "ws", t0)
	// Event 1 drops indicator 2: a revocation, accepted.
	if _, err := s.Apply("ws", "ev1", []stix.Object{indicator(indicatorID(1), "a", until)}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	drain(t, s, "ws", t0.Add(time.Minute))
	got := map[string]Indicator{}
	if err := s.Indicators("ws", func(i Indicator) error { got[i.Base] = i; return nil }); err != nil {
		t.Fatal(err)
	}
	one, two := got[indicatorID(1)], got[indicatorID(2)]
	if len(got) != 2 || one.Revoked || !two.Revoked || !one.Accepted || !two.Accepted || one.Queued || two.Queued || one.Event != "ev1" {
		t.Fatalf("indicators %+v", got)
	}
	body, err := s.SentObject("ws", indicatorID(2))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
		Revoked  bool   `json:"revoked"`
	}
	if err := json.Unmarshal(body, &f); err != nil || f.ID != two.ID || !f.Revoked || f.Modified != "2026-11-22T08:01:00.000Z" {
		t.Fatalf("sent object %s (%v)", body, err)
	}
	if _, err := s.SentObject("ws", indicatorID(9)); err == nil {
		t.Error("SentObject of an unknown id")
	}

	// Resend queues the live one as an upsert and the revoked one as a revocation, each
	// with a later modified; an unknown id is skipped; a second call while they are queued
	// queues nothing.
	n, err := s.Resend("ws", []string{indicatorID(1), indicatorID(2), indicatorID(9)}, t0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("Resend: %d %v", n, err)
	}
	if n, err := s.Resend("ws", []string{indicatorID(1)}, t0.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second Resend: %d %v", n, err)
	}
	ups := drain(t, s, "ws", t0.Add(2*time.Minute))
	if len(ups) != 2 || ups[0].Revoked || !ups[1].Revoked || ups[0].Hash != "a" || ups[1].Modified <= "2026-11-22T08:01:00.000Z" {
		t.Fatalf("resent %+v", ups)
	}
}
