// Package version is the one version string that magnetd and
// magnet-worker report, so the two programs of one build always agree.
package version

import "runtime/debug"

// Version is set at link time with
// -ldflags "-X github.com/magnet-fcgi/magnet/internal/version.Version=...";
// when it is not, String falls back to what the Go toolchain recorded.
var Version = ""

// String returns Version, else the module version or version-control
// revision recorded in the binary, else "dev".
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "dev"
	}
	return rev + dirty
}
