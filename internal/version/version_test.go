package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "a78bccc0123456789abcdef0123456789abcdef0"
	cases := []struct {
		name            string
		stamped, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped wins over the module version", "v1.2.3", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260101000000-a78bccc01234"}, Settings: vcs(rev, "false")},
			Info{Version: "v1.2.3", Revision: rev, GoVersion: "go1.26.0"}},
		{"module version from a tagged build", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}, Settings: vcs(rev, "false")},
			Info{Version: "v1.4.0", Revision: rev, GoVersion: "go1.26.0"}},
		{"pseudo-version with dirty flag as the toolchain records it", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260101000000-a78bccc01234+dirty"}, Settings: vcs(rev, "true")},
			Info{Version: "v0.0.0-20260101000000-a78bccc01234+dirty", Revision: rev, Dirty: true, GoVersion: "go1.26.0"}},
		{"devel build falls back to the revision", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")},
			Info{Version: "devel-a78bccc01234", Revision: rev, GoVersion: "go1.26.0"}},
		{"devel build from a modified tree", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")},
			Info{Version: "devel-a78bccc01234-dirty", Revision: rev, Dirty: true, GoVersion: "go1.26.0"}},
		{"stamped commit where the toolchain has none", "", "0123456789abcdef", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "devel-0123456789ab", Revision: "0123456789abcdef", GoVersion: "go1.26.0"}},
		{"nothing known", "", "", &debug.BuildInfo{GoVersion: "go1.26.0"},
			Info{Version: "devel", Revision: "unknown", GoVersion: "go1.26.0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := resolve(c.stamped, c.commit, c.bi); got != c.want {
				t.Errorf("resolve = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestResolveWithoutBuildInfo(t *testing.T) {
	got := resolve("", "", nil)
	if got.Version != "devel" || got.Revision != "unknown" || got.GoVersion == "" {
		t.Errorf("resolve(nil) = %+v, want devel, unknown and the runtime's Go version", got)
	}
}

func TestUserAgent(t *testing.T) {
	own := "listener/" + String()
	for configured, want := range map[string]string{
		"":                      own,
		own:                     own,
		"acme-soc":              "acme-soc " + own,
		"mispsentinel-listener": "mispsentinel-listener " + own,
	} {
		if got := UserAgent(configured); got != want {
			t.Errorf("UserAgent(%q) = %q, want %q", configured, got, want)
		}
	}
}

func TestGetIsStable(t *testing.T) {
	a, b := Get(), Get()
	if a != b || a.Version == "" || a.Revision == "" || a.GoVersion == "" {
		t.Errorf("Get() = %+v then %+v; want the same, complete answer", a, b)
	}
	if String() != a.Version || Revision() != a.Revision || GoVersion() != a.GoVersion {
		t.Error("accessors disagree with Get")
	}
}
