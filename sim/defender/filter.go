package defender

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// filterFields are the fields the list's $filter documents (spec §3.3).
var filterFields = []string{"application", "createdByDisplayName", "expirationTime", "generateAlert", "title",
	"rbacGroupNames", "rbacGroupIds", "indicatorValue", "indicatorType", "creationTimeDateTimeUtc", "createdBy", "action", "severity"}

// filterNode is a parsed $filter expression.
type filterNode interface{ match(*Indicator) bool }

type allMatch struct{}

func (allMatch) match(*Indicator) bool { return true }

type andNode struct{ l, r filterNode }

func (n andNode) match(i *Indicator) bool { return n.l.match(i) && n.r.match(i) }

type orNode struct{ l, r filterNode }

func (n orNode) match(i *Indicator) bool { return n.l.match(i) || n.r.match(i) }

type notNode struct{ n filterNode }

func (n notNode) match(i *Indicator) bool { return !n.n.match(i) }

type cmpNode struct{ field, op, value string }

func (n cmpNode) match(ind *Indicator) bool {
	var v string
	switch n.field {
	case "application":
		v = ind.Application
	case "expirationTime":
		v = ind.ExpirationTime
	case "generateAlert":
		v = fmt.Sprint(ind.GenerateAlert)
	case "title":
		v = ind.Title
	case "rbacGroupNames":
		return slices.Contains(ind.RbacGroupNames, n.value) == (n.op == "eq")
	case "indicatorValue":
		v = ind.IndicatorValue
	case "indicatorType":
		v = ind.IndicatorType
	case "creationTimeDateTimeUtc":
		v = ind.CreationTime
	case "createdBy", "createdByDisplayName":
		v = ind.CreatedBy
	case "action":
		v = ind.Action
	case "severity":
		v = ind.Severity
	}
	c := strings.Compare(v, n.value)
	switch n.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	default:
		return c <= 0
	}
}

// parseFilter parses the supported $filter subset: comparisons (eq ne gt ge lt le) of a
// documented field with a quoted string, true/false or a bare literal, joined by and/or/not
// and parentheses.
func parseFilter(src string) (filterNode, error) {
	if strings.TrimSpace(src) == "" {
		return allMatch{}, nil
	}
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos].text)
	}
	return n, nil
}

type filterToken struct {
	text   string
	quoted bool
}

func tokenize(s string) ([]filterToken, error) {
	var out []filterToken
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			out = append(out, filterToken{text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated string literal")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			out = append(out, filterToken{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			out = append(out, filterToken{text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

type filterParser struct {
	toks []filterToken
	pos  int
}

func (p *filterParser) peek(word string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, word)
}

func (p *filterParser) or() (filterNode, error) {
	l, err := p.and()
	for err == nil && p.peek("or") {
		p.pos++
		var r filterNode
		if r, err = p.and(); err == nil {
			l = orNode{l, r}
		}
	}
	return l, err
}

func (p *filterParser) and() (filterNode, error) {
	l, err := p.unary()
	for err == nil && p.peek("and") {
		p.pos++
		var r filterNode
		if r, err = p.unary(); err == nil {
			l = andNode{l, r}
		}
	}
	return l, err
}

func (p *filterParser) unary() (filterNode, error) {
	switch {
	case p.peek("not"):
		p.pos++
		n, err := p.unary()
		return notNode{n}, err
	case p.peek("("):
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			return nil, errors.New("missing )")
		}
		p.pos++
		return n, nil
	}
	if p.pos+3 > len(p.toks) {
		return nil, errors.New("incomplete comparison")
	}
	field, op, lit := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	p.pos += 3
	if field.quoted || !slices.Contains(filterFields, field.text) {
		return nil, fmt.Errorf("could not find a property named '%s'", field.text)
	}
	o := strings.ToLower(op.text)
	if !slices.Contains([]string{"eq", "ne", "gt", "ge", "lt", "le"}, o) {
		return nil, fmt.Errorf("unknown operator %q", op.text)
	}
	return cmpNode{field: field.text, op: o, value: lit.text}, nil
}
