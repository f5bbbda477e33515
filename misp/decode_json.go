package misp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// parser is a small pull parser over one JSON document, specialised for MISP events:
// encoding/json with reflection spends most of its time where this parser writes straight
// into the model. It validates the whole document (malformed JSON is an error, never a
// panic) and keeps the path of the field being read for error messages.
type parser struct {
	data []byte
	// src is data as one string: decoded strings without escapes are substrings of it, which
	// saves an allocation per field (the event's strings then share the input's memory).
	src  string
	pos  int
	path []pathElem
}

// pathElem is one step of the path to the value being read: an object key, or an array
// index when isIndex.
type pathElem struct {
	key     string
	index   int
	isIndex bool
}

// maxDepth bounds nesting in skipped values, so hostile input cannot exhaust the stack.
const maxDepth = 512

// scalarKind is the JSON type of a scalar.
type scalarKind int

const (
	kindString scalarKind = iota
	kindNumber
	kindTrue
	kindFalse
	kindNull
)

// fieldError is a decoding error located at a field path ("Event.Attribute[3].to_ids").
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return "field " + e.path + ": " + e.msg
}

func (p *parser) fail(format string, args ...any) error {
	return &fieldError{path: p.pathString(), msg: fmt.Sprintf(format, args...)}
}

// pathString renders the current path as Event.Attribute[3].to_ids.
func (p *parser) pathString() string {
	var b strings.Builder
	for i, e := range p.path {
		switch {
		case e.isIndex:
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		case i > 0:
			b.WriteString("." + e.key)
		default:
			b.WriteString(e.key)
		}
	}
	return b.String()
}

func (p *parser) syntax(what string) error {
	if p.pos >= len(p.data) {
		return p.fail("unexpected end of JSON input (%s)", what)
	}
	return p.fail("invalid JSON at offset %d: %s, found %q", p.pos, what, p.data[p.pos])
}

func (p *parser) push(key string) { p.path = append(p.path, pathElem{key: key}) }

func (p *parser) pushIndex(i int) { p.path = append(p.path, pathElem{index: i, isIndex: true}) }

func (p *parser) pop() { p.path = p.path[:len(p.path)-1] }

func (p *parser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (p *parser) peek() byte {
	p.ws()
	if p.pos >= len(p.data) {
		return 0
	}
	return p.data[p.pos]
}

// object reads an object, calling field for each key with the parser positioned at the
// value; field must consume the value.
func (p *parser) object(field func(key string) error) error {
	if p.peek() != '{' {
		return p.fail("expected an object, found %s", p.describe())
	}
	return p.members('}', "expected ',' or '}' in object", func() error {
		key, err := p.key()
		if err != nil {
			return err
		}
		p.push(key)
		if err := field(key); err != nil {
			return err
		}
		p.pop()
		return nil
	})
}

// array reads an array (null counts as empty), calling elem for each element.
func (p *parser) array(elem func(i int) error) error {
	switch p.peek() {
	case 'n':
		return p.literal("null")
	case '[':
	default:
		return p.fail("expected an array, found %s", p.describe())
	}
	i := 0
	return p.members(']', "expected ',' or ']' in array", func() error {
		p.pushIndex(i)
		if err := elem(i); err != nil {
			return err
		}
		p.pop()
		i++
		return nil
	})
}

// members reads the comma-separated members of the object or array whose opening bracket is
// at the position, up to and including its closing bracket, calling member for each;
// badSeparator is the syntax error for anything else after a member.
func (p *parser) members(closing byte, badSeparator string, member func() error) error {
	p.pos++
	if p.peek() == closing {
		p.pos++
		return nil
	}
	for {
		if err := member(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.pos++
		case closing:
			p.pos++
			return nil
		default:
			return p.syntax(badSeparator)
		}
	}
}

// key reads an object member's key and the colon after it.
func (p *parser) key() (string, error) {
	if p.peek() != '"' {
		return "", p.syntax("expected a quoted key")
	}
	key, err := p.str()
	if err != nil {
		return "", err
	}
	if p.peek() != ':' {
		return "", p.syntax("expected ':' after key")
	}
	p.pos++
	return key, nil
}

// describe names the JSON type of the next value, for error messages.
func (p *parser) describe() string {
	switch p.peek() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "the end of the input"
	default:
		return "a number"
	}
}

func (p *parser) literal(lit string) error {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return p.syntax("invalid literal")
	}
	p.pos += len(lit)
	return nil
}

// str reads a string literal.
func (p *parser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	ascii := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.src[start:p.pos]
			p.pos++
			if !ascii && !utf8.ValidString(s) {
				return strings.ToValidUTF8(s, "\uFFFD"), nil
			}
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.syntax("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.pos++
	}
	return "", p.syntax("unterminated string")
}

// strSlow finishes a string literal that contains escapes.
func (p *parser) strSlow(start int) (string, error) {
	b := make([]byte, 0, p.pos-start+16)
	b = append(b, p.data[start:p.pos]...)
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return strings.ToValidUTF8(unsafe.String(unsafe.SliceData(b), len(b)), "\uFFFD"), nil // b is not written again: no copy
		case c < 0x20:
			return "", p.syntax("control character in string")
		case c != '\\':
			b = append(b, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.data) {
			break
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.syntax("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := unicode16Replacement
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					if lo, ok := p.hex4(); ok {
						if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
							r2 = dec
						} else {
							p.pos = save
						}
					} else {
						return "", p.syntax("invalid \\u escape")
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			p.pos--
			return "", p.syntax("invalid escape in string")
		}
	}
	return "", p.syntax("unterminated string")
}

const unicode16Replacement = utf8.RuneError

func (p *parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// number reads a number literal and returns its text.
func (p *parser) number() (string, error) {
	start := p.pos
	if err := p.skipNumber(); err != nil {
		return "", err
	}
	return p.src[start:p.pos], nil
}

// skipNumber reads a number literal.
func (p *parser) skipNumber() error {
	d := p.data
	i := p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	ok := true
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i, _ = digits(d, i)
	default:
		ok = false
	}
	if ok && i < len(d) && d[i] == '.' {
		i, ok = digits(d, i+1)
	}
	if ok && i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		i, ok = digits(d, i)
	}
	p.pos = i
	if !ok {
		return p.syntax("invalid number")
	}
	return nil
}

// digits returns the index after the run of decimal digits that starts at i in d, and whether
// the run holds at least one.
func digits(d []byte, i int) (end int, ok bool) {
	end = i
	for end < len(d) && d[end] >= '0' && d[end] <= '9' {
		end++
	}
	return end, end > i
}

// scalar reads a string, number, boolean or null; objects and arrays are an error.
func (p *parser) scalar() (scalarKind, string, error) {
	switch c := p.peek(); {
	case c == '"':
		s, err := p.str()
		return kindString, s, err
	case c == 't':
		return kindTrue, "true", p.literal("true")
	case c == 'f':
		return kindFalse, "false", p.literal("false")
	case c == 'n':
		return kindNull, "", p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		s, err := p.number()
		return kindNumber, s, err
	case c == '{' || c == '[':
		return 0, "", p.fail("expected a string, number or boolean, found %s", p.describe())
	default:
		return 0, "", p.syntax("expected a value")
	}
}

// skip reads and discards any value, validating it.
func (p *parser) skip() error { return p.skipDepth(0) }

func (p *parser) skipDepth(depth int) error {
	if depth > maxDepth {
		return p.fail("JSON nested deeper than %d levels", maxDepth)
	}
	switch p.peek() {
	case '{':
		return p.members('}', "expected ',' or '}' in object", func() error {
			if _, err := p.key(); err != nil {
				return err
			}
			return p.skipDepth(depth + 1)
		})
	case '[':
		return p.members(']', "expected ',' or ']' in array", func() error {
			return p.skipDepth(depth + 1)
		})
	default:
		_, _, err := p.scalar()
		return err
	}
}

// raw reads any value and returns a copy of its JSON text.
func (p *parser) raw() ([]byte, error) {
	p.ws()
	start := p.pos
	if err := p.skip(); err != nil {
		return nil, err
	}
	return append([]byte(nil), p.data[start:p.pos]...), nil
}

// text reads a value MISP sends as a string or a number (ids, values): numbers and booleans
// are kept as their literal text, null is "".
func (p *parser) text() (string, error) {
	_, s, err := p.scalar()
	return s, err
}

// scalarView is scalar without allocation for the common case: the text of a string without
// escapes, or of a number, is returned as a view into the input.
func (p *parser) scalarView() (scalarKind, []byte, error) {
	switch c := p.peek(); {
	case c == '"':
		start := p.pos + 1
		for i := start; i < len(p.data); i++ {
			switch b := p.data[i]; {
			case b == '"':
				p.pos = i + 1
				return kindString, p.data[start:i], nil
			case b == '\\' || b < 0x20 || b >= utf8.RuneSelf:
				s, err := p.str()
				return kindString, []byte(s), err
			}
		}
		_, err := p.str()
		return kindString, nil, err
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		err := p.skipNumber()
		return kindNumber, p.data[start:p.pos], err
	case c == 't':
		return kindTrue, nil, p.literal("true")
	case c == 'f':
		return kindFalse, nil, p.literal("false")
	case c == 'n':
		return kindNull, nil, p.literal("null")
	}
	kind, s, err := p.scalar()
	return kind, []byte(s), err
}

// flag reads a boolean MISP sends as true/false, "0"/"1", 0/1 ("true"/"false", "" and null
// are accepted too).
func (p *parser) flag() (bool, error) {
	kind, b, err := p.scalarView()
	if err != nil {
		return false, err
	}
	switch kind {
	case kindTrue:
		return true, nil
	case kindFalse, kindNull:
		return false, nil
	}
	switch s := string(b); s {
	case "1", "true", "True":
		return true, nil
	case "0", "false", "False", "":
		return false, nil
	}
	return false, p.fail("cannot use %s as a boolean", quoteShort(string(b)))
}

// unixTime reads a Unix timestamp in seconds sent as a string or a number; "", "0", 0 and
// null are the zero time.
func (p *parser) unixTime() (t unixSeconds, err error) {
	_, b, err := p.scalarView()
	if err != nil || len(b) == 0 || (len(b) == 1 && b[0] == '0') {
		return 0, err
	}
	if n, ok := parseDigits(b); ok {
		if n > 253402300799 { // up to 9999-12-31
			return 0, p.fail("Unix timestamp %s out of range", quoteShort(string(b)))
		}
		return unixSeconds(n), nil
	}
	s := string(b)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 || f > 253402300799 {
			return 0, p.fail("cannot use %s as a Unix timestamp", quoteShort(s))
		}
		n = int64(f)
	}
	if n < 0 || n > 253402300799 { // up to 9999-12-31
		return 0, p.fail("Unix timestamp %s out of range", quoteShort(s))
	}
	return unixSeconds(n), nil
}

// float reads a number MISP sends as a JSON number or a numeric string; null and "" are 0.
func (p *parser) float() (float64, error) {
	_, b, err := p.scalarView()
	if err != nil || len(b) == 0 {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, p.fail("cannot use %s as a number", quoteShort(string(b)))
	}
	return f, nil
}

// parseDigits parses a short run of ASCII digits without allocating.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

var errTrailingData = errors.New("unexpected data after the top-level JSON value")
