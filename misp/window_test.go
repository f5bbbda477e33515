package misp

import (
	"reflect"
	"testing"
)

func TestWindowKeysAreSplitFromMembership(t *testing.T) {
	filters := map[string]any{
		"published": true, "tags": []any{"tlp:green"}, "enforceWarninglist": true,
		"publish_timestamp": "14d", "last": "30d", "timestamp": 1700000000, "from": "2024-01-01",
	}
	if got, want := WindowKeys(filters), []string{"from", "last", "publish_timestamp", "timestamp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("WindowKeys = %v, want %v", got, want)
	}
	want := map[string]any{"published": true, "tags": []any{"tlp:green"}, "enforceWarninglist": true}
	if got := MembershipFilters(filters); !reflect.DeepEqual(got, want) {
		t.Errorf("MembershipFilters = %v, want %v", got, want)
	}
	if len(filters) != 7 {
		t.Error("MembershipFilters changed its argument")
	}
	if WindowKeys(map[string]any{"published": true}) != nil {
		t.Error("a filter set without time bounds has window keys")
	}
}
