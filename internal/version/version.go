// Package version owns the one version string of the listener binaries: the value the release
// build stamps with -ldflags, or what the Go toolchain recorded in the binary (module version,
// else VCS revision and dirty flag). The CLI prints it, the daemon logs it once and exposes it as
// listener_build_info, and the MISP and Microsoft clients send it in their User-Agent.
//
// It never reads files, the environment or the network.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Version is set at build time:
//
//	go build -ldflags "-X github.com/mispsentinel/listener/internal/version.Version=v1.2.3"
//
// Left empty, String falls back to the build information the Go toolchain embeds.
var Version string

// Commit may be set at build time (-X ...version.Commit=<sha>) where the toolchain cannot stamp
// the VCS revision itself, e.g. a container build without the .git folder.
var Commit string

// Name is the product name in the User-Agent and the version line.
const Name = "listener"

// Info is what the binary knows about its own build.
type Info struct {
	// Version is the release version (v1.2.3), a pseudo-version, or devel-<revision>[-dirty].
	Version string
	// Revision is the VCS commit the binary was built from, or "unknown".
	Revision string
	// Dirty reports a build from a work tree with uncommitted changes.
	Dirty bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

var (
	once   sync.Once
	cached Info
)

// Get returns the build information of the running binary. It is computed once.
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		cached = resolve(Version, Commit, bi)
	})
	return cached
}

// String returns the version of the running binary.
func String() string { return Get().Version }

// Revision returns the VCS revision of the running binary, or "unknown".
func Revision() string { return Get().Revision }

// GoVersion returns the Go toolchain version that built the running binary.
func GoVersion() string { return Get().GoVersion }

// UserAgent returns the User-Agent the listener sends: "listener/<version>", after configured
// when an operator configured one (so their identifier stays first).
func UserAgent(configured string) string {
	own := Name + "/" + String()
	if configured == "" || configured == own {
		return own
	}
	return configured + " " + own
}

// resolve applies the precedence: the stamped version, the module version the toolchain
// recorded, then the VCS revision; bi may be nil (a binary built without module support).
func resolve(stamped, commit string, bi *debug.BuildInfo) Info {
	info := Info{Version: stamped, Revision: commit, GoVersion: runtime.Version()}
	var moduleVersion, vcsRevision string
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		moduleVersion = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRevision = s.Value
			case "vcs.modified":
				info.Dirty = s.Value == "true"
			}
		}
	}
	if info.Revision == "" {
		info.Revision = vcsRevision
	}
	if info.Version == "" && moduleVersion != "" && moduleVersion != "(devel)" {
		info.Version = moduleVersion
	}
	if info.Version == "" {
		info.Version = "devel"
		if info.Revision != "" {
			info.Version += "-" + short(info.Revision)
			if info.Dirty {
				info.Version += "-dirty"
			}
		}
	}
	if info.Revision == "" {
		info.Revision = "unknown"
	}
	return info
}

// short returns the first 12 characters of a revision, the length git and Go pseudo-versions use.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
