package printable

import "testing"

// TestEscape is issue 19 row 19: `deadletters list` printed Sentinel's messages raw, so terminal
// escapes in them reached the terminal.
func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain message":                   "plain message",
		"Ungültiger Wert — 値":             "Ungültiger Wert — 値",
		"\x1b[2J\x1b]0;owned\x07 cleared": `\x1b[2J\x1b]0;owned\x07 cleared`,
		"line\nbreak\ttab\r":              `line\x0abreak\x09tab\x0d`,
		"abc\u202eexe.txt":                `abc\u202eexe.txt`,
		"bad \xff byte":                   `bad \xff byte`,
		"c1 \u009b31m":                    `c1 \u009b31m`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
