package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronField is the range and names of one field of a standard 5-field cron expression.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i
}

var cronFields = []cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// checkCron checks the syntax of a standard cron expression (minute hour day-of-month month
// day-of-week, with *, ranges, lists, steps and month/day names) or a descriptor (@daily,
// @every 6h, ...). The reconciler parses it for real; this only makes a typo fail at start.
func checkCron(spec string) error {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "@") {
		if d, ok := strings.CutPrefix(spec, "@every "); ok {
			if v, err := time.ParseDuration(strings.TrimSpace(d)); err != nil || v < time.Minute {
				return fmt.Errorf("@every needs a duration of at least 1m, got %q", d)
			}
			return nil
		}
		switch spec {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return nil
		}
		return fmt.Errorf("unknown descriptor %q", spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != len(cronFields) {
		return fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d in %q", len(fields), spec)
	}
	for i, text := range fields {
		if err := cronFields[i].check(text); err != nil {
			return fmt.Errorf("%s field %q: %w", cronFields[i].name, text, err)
		}
	}
	return nil
}

func (f cronField) check(text string) error {
	for _, part := range strings.Split(text, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 || n > f.max {
				return fmt.Errorf("bad step %q", step)
			}
		}
		if rng == "*" || rng == "?" {
			continue
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := f.value(lo)
		if err != nil {
			return err
		}
		if !isRange {
			continue
		}
		b, err := f.value(hi)
		if err != nil {
			return err
		}
		if b < a {
			return fmt.Errorf("range %s is backwards", rng)
		}
	}
	return nil
}

func (f cronField) value(text string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(text, n) {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < f.min || n > f.max {
		return 0, fmt.Errorf("%q is not between %d and %d", text, f.min, f.max)
	}
	return n, nil
}
