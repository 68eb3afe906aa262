// Package version says which build is running: its version, the commit it
// was built from and the Go toolchain. `omikuji version` and `kubectl omikuji
// version` print it the same way.
//
// The Go toolchain records the version and commit itself when it builds from
// a git clone (`go install ./cmd/...`, `go build`). Builds that turn that off
// or know better (tools/image, the Dockerfile, make build) stamp them with
//
//	-ldflags "-X github.com/omikuji/omikuji/internal/version.version=v1.2.3
//	          -X github.com/omikuji/omikuji/internal/version.commit=<sha>"
package version

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X); empty means "ask the build information".
var (
	version string
	commit  string
)

// Unknown stands for a fact no one recorded, e.g. the commit of `go run`.
const Unknown = "unknown"

// Info is what a binary knows about its own build.
type Info struct {
	Version   string // v1.2.3, a pseudo-version such as v0.0.0-20261206212506-e49bc5c1234a, or "(devel)"
	Commit    string // the full revision, or Unknown
	Modified  bool   // built from a tree with uncommitted changes
	GoVersion string // the toolchain, e.g. go1.26.0
	Platform  string // GOOS/GOARCH
}

// Get reads the running binary's build.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return read(bi, version, commit)
}

// read combines the build information (nil when the binary has none) with
// the linker's stamps, which win.
func read(bi *debug.BuildInfo, stampedVersion, stampedCommit string) Info {
	i := Info{Version: "(devel)", Commit: Unknown, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if v := bi.Main.Version; v != "" {
			i.Version = v
		}
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Commit = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if stampedVersion != "" {
		i.Version = stampedVersion
	}
	if stampedCommit != "" {
		i.Commit = stampedCommit
	}
	return i
}

// Write prints the build of program, one fact a line:
//
//	omikuji v1.2.3
//	commit  e49bc5c1234a5678e49bc5c1234a5678e49bc5c1
//	go      go1.26.0 linux/amd64
func (i Info) Write(w io.Writer, program string) error {
	commit := i.Commit
	if i.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "%s %s\ncommit  %s\ngo      %s %s\n", program, i.Version, commit, i.GoVersion, i.Platform)
	return err
}
