// Package printable makes text from outside (Sentinel's error messages, MISP values) safe to
// print on a terminal. It owns escaping only; it never truncates or interprets the text.
package printable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with control characters (terminal escape sequences start with one), Unicode
// format characters (bidirectional overrides among them) and invalid UTF-8 replaced by Go-style
// escapes (\x1b, \u202e), so that printing it cannot drive the terminal or reorder the line.
// Printable text, non-ASCII letters included, is unchanged.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
