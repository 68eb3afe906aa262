package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Docker cannot run here, so these tests hold the Dockerfile to the facts
// tools/image builds from: the same user, port, entrypoint and build flags.

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfileMatchesTheImage(t *testing.T) {
	ins := readDockerfile(t)
	var froms []int
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, i)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("want a build stage and a final stage, found %d FROM lines", len(froms))
	}
	build, final := ins[froms[0]:froms[1]], ins[froms[1]:]

	if !strings.HasPrefix(build[0].args, "--platform=$BUILDPLATFORM golang:1.26") {
		t.Errorf("build stage %q: want FROM --platform=$BUILDPLATFORM golang:1.26", build[0].args)
	}
	download, copySource, compile := -1, -1, ""
	for i, in := range build {
		switch {
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
			download = i
		case in.cmd == "COPY" && copySource < 0 && strings.HasPrefix(in.args, "cmd/"):
			copySource = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			compile = in.args
		}
	}
	if download < 0 || copySource < 0 || download > copySource {
		t.Errorf("go mod download must come before the source is copied (download at %d, COPY cmd/ at %d)", download, copySource)
	}
	stamps := ldflags(buildOptions{version: "$VERSION", revision: "$REVISION"})
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "-trimpath", `-ldflags="` + stamps + `"`, "./cmd/omikuji"} {
		if !strings.Contains(compile, want) {
			t.Errorf("the go build line lacks %s: %q", want, compile)
		}
	}

	if !strings.Contains(compile, "go run ./tools/image sbom") || !strings.Contains(compile, "/out/"+sbomPath) {
		t.Errorf("the build stage must write the SBOM with `go run ./tools/image sbom`: %q", compile)
	}

	if base := final[0].args; base != "gcr.io/distroless/static-debian13:nonroot" {
		t.Errorf("final stage from %q; want gcr.io/distroless/static-debian13:nonroot", base)
	}
	want := map[string]string{
		"USER":       fmt.Sprintf("%d:%d", uid, uid),
		"EXPOSE":     strings.TrimSuffix(port, "/tcp"),
		"ENTRYPOINT": `["/` + binaryPath + `"]`,
		"CMD":        `["serve"]`,
	}
	got := map[string]string{}
	var copies []string
	for _, in := range final {
		got[in.cmd] = in.args
		if in.cmd == "COPY" {
			copies = append(copies, in.args)
		}
	}
	for cmd, w := range want {
		if got[cmd] != w {
			t.Errorf("final stage %s %q, want %q (as tools/image builds it)", cmd, got[cmd], w)
		}
	}
	// The same owners and modes as rootFS gives the two files.
	for _, w := range []string{
		"--from=build --chown=0:0 --chmod=0555 /out/omikuji /" + binaryPath,
		"--from=build --chown=0:0 --chmod=0444 /out/" + sbomPath + " /" + sbomPath,
	} {
		if !slices.Contains(copies, w) {
			t.Errorf("final stage lacks COPY %s (has %q)", w, copies)
		}
	}
	// The labels tools/image sets from fixed facts, with the same values.
	labels := got["LABEL"]
	for k, v := range ociAnnotations(buildOptions{}) {
		if k == "org.opencontainers.image.created" {
			continue // BuildKit stamps the image itself from SOURCE_DATE_EPOCH
		}
		if !strings.Contains(labels, k+"="+strconv.Quote(v)) {
			t.Errorf("final stage LABEL lacks %s=%q: %s", k, v, labels)
		}
	}
	for _, k := range []string{"org.opencontainers.image.version=\"$VERSION\"", "org.opencontainers.image.revision=\"$REVISION\""} {
		if !strings.Contains(labels, k) {
			t.Errorf("final stage LABEL lacks %s: %s", k, labels)
		}
	}
}

// The allow-list in .dockerignore must let through every package of this
// module that the binary and the image tool import, or `docker build` fails
// where `go build` works.
func TestDockerignoreAllowsEveryImportedPackage(t *testing.T) {
	b, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for _, line := range strings.Split(string(b), "\n") {
		if dir, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
			allowed = append(allowed, dir)
		}
	}
	out, err := exec.Command(goTool(), "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", testMain, "github.com/omikuji/omikuji/tools/image").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel) + "/"
		ok := false
		for _, a := range allowed {
			if strings.HasPrefix(rel, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("package dir %s is imported by the binary but .dockerignore leaves it out (allowed: %v)", rel, allowed)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !strings.Contains(string(b), "!"+f) {
			t.Errorf(".dockerignore must allow %s", f)
		}
	}
}
