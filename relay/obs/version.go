package obs

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version describes the running binary from its build information: the
// module version, the VCS revision and whether the tree was modified, and
// the Go version. Every program prints it for --version.
func Version() string {
	version, revision, modified := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	out := version
	if revision != "" {
		if len(revision) > 12 {
			revision = revision[:12]
		}
		out += " commit " + revision
		if modified {
			out += "+modified"
		}
	}
	return fmt.Sprintf("%s %s/%s %s", out, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// VersionLine is what `PROGRAM --version` prints.
func VersionLine(program string) string { return program + " " + Version() + "\n" }
