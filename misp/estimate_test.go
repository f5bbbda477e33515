package misp

import (
	"strings"
	"testing"
)

// TestEstimateCount checks the attribute-count estimate: the elements of the array at the
// position, found through strings holding brackets, commas and escaped quotes, bounded by the
// array's size (one element per 128 bytes), 0 when the array is not terminated, and the
// position left unchanged.
func TestEstimateCount(t *testing.T) {
	pad := strings.Repeat("x", 130) // keeps each element above the size bound
	for _, c := range []struct {
		in   string
		want int
	}{
		{`[]`, 0},
		{` [ ] `, 0},
		{`[{}]`, 1},
		{`[{"a":"x,]}` + pad + `"},{"b":[1,2,3],"p":"` + pad + `"}]`, 2},
		{`[{"a":"\"],[` + pad + `"},{"b":"\\` + pad + `"},{"c":"\\\"]` + pad + `"}],{"x":1}`, 3},
		{`["` + pad + `",7,"` + pad + `"]`, 3},
		{`[1,2,3,4,5,6,7,8]`, 1}, // 17 bytes: bounded by the size
		{`[{"a":1},{"b":2}`, 0},
		{`[{"a":"unterminated}]`, 0},
		{`{"a":1}`, 0},
	} {
		p := &parser{data: []byte(c.in)}
		if got := p.estimateCount(); got != c.want || p.pos != 0 {
			t.Errorf("estimateCount(%.40s...) = %d at %d, want %d at 0", c.in, got, p.pos, c.want)
		}
	}
}
