package config

import "testing"

func TestCheckCron(t *testing.T) {
	valid := []string{"0 */6 * * *", "15 2 * * mon-fri", "0 0 1,15 * *", "*/5 * * jan-jun 0", "0 3 * * 7", "@daily", "@every 6h"}
	for _, spec := range valid {
		if err := checkCron(spec); err != nil {
			t.Errorf("checkCron(%q) = %v, want nil", spec, err)
		}
	}
	invalid := []string{"0 */6 * *", "0 0 * * * *", "60 * * * *", "0 0 0 * *", "0 0 * 13 *", "5-1 * * * *", "*/0 * * * *", "0 0 * * funday", "@every 10s", "@fortnightly", ""}
	for _, spec := range invalid {
		if err := checkCron(spec); err == nil {
			t.Errorf("checkCron(%q) = nil, want an error", spec)
		}
	}
}
