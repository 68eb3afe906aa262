package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/omikuji/omikuji", Version: "v0.0.0-20261206212506-e49bc5c1234a+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "e49bc5c1234a5678e49bc5c1234a5678e49bc5c1"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name           string
		bi             *debug.BuildInfo
		version, commt string
		want           Info
	}{
		{"no build information", nil, "", "",
			Info{Version: "(devel)", Commit: Unknown, GoVersion: runtime.Version(), Platform: platform}},
		{"go run: no vcs", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "", "",
			Info{Version: "(devel)", Commit: Unknown, GoVersion: "go1.26.0", Platform: platform}},
		{"go build in a clone", vcs, "", "",
			Info{Version: "v0.0.0-20261206212506-e49bc5c1234a+dirty", Commit: "e49bc5c1234a5678e49bc5c1234a5678e49bc5c1", Modified: true, GoVersion: "go1.26.0", Platform: platform}},
		{"the linker's stamps win", vcs, "v1.2.3", "0123456789abcdef0123456789abcdef01234567",
			Info{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, GoVersion: "go1.26.0", Platform: platform}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := read(tc.bi, tc.version, tc.commt); got != tc.want {
				t.Errorf("read = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	var b strings.Builder
	i := Info{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, GoVersion: "go1.26.0", Platform: "linux/arm64"}
	if err := i.Write(&b, "kubectl-omikuji"); err != nil {
		t.Fatal(err)
	}
	want := "kubectl-omikuji v1.2.3\n" +
		"commit  0123456789abcdef0123456789abcdef01234567 (modified)\n" +
		"go      go1.26.0 linux/arm64\n"
	if b.String() != want {
		t.Errorf("Write:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestGetReadsThisBinary reads the test binary's own build information: the
// toolchain that built it and this platform.
func TestGetReadsThisBinary(t *testing.T) {
	i := Get()
	if i.GoVersion != runtime.Version() || i.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Get = %+v, want %s on %s/%s", i, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	if i.Version == "" || i.Commit == "" {
		t.Errorf("Get = %+v: empty version or commit", i)
	}
}
