package pipeline

import "testing"

func TestNoticeKindString(t *testing.T) {
	for kind, want := range map[NoticeKind]string{Published: "published", Deleted: "deleted", 0: "unknown"} {
		if got := kind.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(kind), got, want)
		}
	}
}
