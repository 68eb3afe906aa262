package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// The SBOM in each platform's image lists exactly the modules that `go
// list` says the binary links for that platform, with their versions and
// go.sum hashes, and the toolchain that built it.
func TestSBOMListsTheBinarysModules(t *testing.T) {
	_, ociDir := builtImage(t)
	goVersion := goEnv(t, "GOVERSION")
	for platform, img := range platformImages(t, readIndex(t, ociDir)) {
		t.Run(platform, func(t *testing.T) {
			files := layerFiles(t, img)
			var bom cdx.BOM
			if err := cdx.NewBOMDecoder(bytes.NewReader(files[sbomPath].contents), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
				t.Fatalf("/%s is not a CycloneDX JSON document: %v", sbomPath, err)
			}
			if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil {
				t.Fatalf("spec %v, metadata %+v; want CycloneDX 1.6 describing the application", bom.SpecVersion, bom.Metadata)
			}
			if bom.Metadata.Timestamp != "1970-01-01T00:00:00Z" {
				t.Errorf("timestamp %q, want SOURCE_DATE_EPOCH's (unset: the epoch)", bom.Metadata.Timestamp)
			}
			app := bom.Metadata.Component
			if app.Name != "github.com/omikuji/omikuji" || app.Version != testVersion || app.Type != cdx.ComponentTypeApplication {
				t.Errorf("application %s %s (%s), want github.com/omikuji/omikuji %s", app.Name, app.Version, app.Type, testVersion)
			}
			if app.Licenses == nil || len(*app.Licenses) != 1 || (*app.Licenses)[0].License == nil || (*app.Licenses)[0].License.ID != license {
				t.Errorf("application licences %+v, want the SPDX ID %s", app.Licenses, license)
			}
			goos, goarch, _ := strings.Cut(platform, "/")
			if !slices.Contains(*app.Properties, cdx.Property{Name: "go:build:GOARCH", Value: goarch}) {
				t.Errorf("application properties %v lack GOARCH=%s", *app.Properties, goarch)
			}

			var listed []string
			for _, c := range *bom.Components {
				if c.Name == "std" {
					if c.Version != goVersion {
						t.Errorf("std %s, want the toolchain's %s", c.Version, goVersion)
					}
					continue
				}
				listed = append(listed, c.Name+"@"+c.Version)
				if c.PackageURL != "pkg:golang/"+c.Name+"@"+c.Version {
					t.Errorf("%s: purl %q", c.Name, c.PackageURL)
				}
				if c.Hashes == nil || len(*c.Hashes) != 1 || (*c.Hashes)[0].Algorithm != cdx.HashAlgoSHA256 || len((*c.Hashes)[0].Value) != 64 {
					t.Errorf("%s: hashes %v, want its go.sum SHA-256", c.Name, c.Hashes)
				}
			}
			slices.Sort(listed)
			if want := linkedModules(t, goos, goarch); !slices.Equal(listed, want) {
				t.Errorf("SBOM modules\n%s\nwant (go list -deps)\n%s", strings.Join(listed, "\n"), strings.Join(want, "\n"))
			}
			deps := *bom.Dependencies
			if len(deps) != 1 || deps[0].Ref != app.BOMRef || len(*deps[0].Dependencies) != len(*bom.Components) {
				t.Errorf("dependencies %+v, want the application depending on all %d components", deps, len(*bom.Components))
			}

			// `image sbom`, which the Dockerfile runs, gives the same file.
			bin := filepath.Join(t.TempDir(), "omikuji")
			if err := os.WriteFile(bin, files[binaryPath].contents, 0o755); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runTool(t, "", "sbom", "--version", testVersion, bin)
			if code != 0 || stdout != string(files[sbomPath].contents) {
				t.Errorf("image sbom: exit %d (%s); output equal to the image's file: %v", code, stderr, stdout == string(files[sbomPath].contents))
			}
		})
	}
}

func TestSBOMRejectsBadInput(t *testing.T) {
	notGo := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		error string
	}{
		{[]string{"sbom"}, "exactly one Go binary"},
		{[]string{"sbom", notGo, notGo}, "exactly one Go binary"},
		{[]string{"sbom", "/nonexistent/omikuji"}, "no such file"},
		{[]string{"sbom", notGo}, "Go build information"},
	} {
		if code, _, stderr := runTool(t, "", tc.args...); code != 2 || !strings.Contains(stderr, tc.error) {
			t.Errorf("%v: exit %d, stderr %q; want 2 mentioning %q", tc.args, code, stderr, tc.error)
		}
	}
}

// linkedModules asks the go command which modules (path@version, replaced
// ones as their replacement) provide the packages of the binary.
func linkedModules(t *testing.T, goos, goarch string) []string {
	t.Helper()
	cmd := exec.Command(goTool(), "list", "-deps", "-f",
		"{{with .Module}}{{if not .Main}}{{with .Replace}}{{.Path}}@{{.Version}}{{else}}{{.Path}}@{{.Version}}{{end}}{{end}}{{end}}", testMain)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	mods := strings.Fields(string(out))
	slices.Sort(mods)
	return slices.Compact(mods)
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command(goTool(), "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
