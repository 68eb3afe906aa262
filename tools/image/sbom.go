package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// sbomPath is where the image carries the SBOM of its binary, i.e.
// /sbom.cdx.json.
const sbomPath = "sbom.cdx.json"

// sbom is a CycloneDX bill of materials for a Go binary, read from the build
// information the Go linker embeds in it (what `go version -m` prints): the
// main module, every module linked in with its version and go.sum hash, and
// the toolchain, whose standard library is part of every Go binary. Nothing
// in it is written by hand, so it cannot drift from the binary.
func sbom(binary []byte, version string, created time.Time) ([]byte, error) {
	info, err := buildinfo.Read(bytes.NewReader(binary))
	if err != nil {
		return nil, fmt.Errorf("reading the Go build information of the binary: %w", err)
	}
	main := module(info.Main, cdx.ComponentTypeApplication)
	main.Version = version // the build stamps "(devel)" for the main module
	main.PackageURL = purl(info.Main.Path, version)
	main.Properties = buildSettings(info)
	main.Licenses = &cdx.Licenses{{License: &cdx.License{ID: license}}}

	std := cdx.Component{
		BOMRef:     purl("std", info.GoVersion),
		Type:       cdx.ComponentTypeLibrary,
		Name:       "std",
		Version:    info.GoVersion,
		PackageURL: purl("std", info.GoVersion),
	}
	components := []cdx.Component{std}
	refs := []string{std.BOMRef}
	for _, dep := range info.Deps {
		c := module(*dep, cdx.ComponentTypeLibrary)
		components = append(components, c)
		refs = append(refs, c.BOMRef)
	}

	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{
		Timestamp: created.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication,
			Name: "omikuji tools/image",
		}}},
		Component: &main,
	}
	bom.Components = &components
	// Go records which modules are linked in, not who imports whom, so the
	// graph is one level: the application depends on every module.
	bom.Dependencies = &[]cdx.Dependency{{Ref: main.BOMRef, Dependencies: &refs}}

	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// module describes one Go module; a replaced module is described as what was
// really built in (the replacement).
func module(m debug.Module, kind cdx.ComponentType) cdx.Component {
	built := m
	if m.Replace != nil {
		built = *m.Replace
	}
	c := cdx.Component{
		BOMRef:     purl(built.Path, built.Version),
		Type:       kind,
		Name:       built.Path,
		Version:    built.Version,
		PackageURL: purl(built.Path, built.Version),
	}
	if h, ok := goSumHash(built.Sum); ok {
		c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
	}
	if m.Replace != nil {
		c.Properties = &[]cdx.Property{{Name: "go:replaces", Value: m.Path + "@" + m.Version}}
	}
	return c
}

// purl is the package URL of a Go module (pkg:golang/PATH@VERSION), as
// scanners look modules up.
func purl(path, version string) string {
	if version == "" || version == "(devel)" {
		return "pkg:golang/" + path
	}
	return "pkg:golang/" + path + "@" + version
}

// goSumHash turns a go.sum hash ("h1:" + base64 of a SHA-256) into hex.
func goSumHash(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

// buildSettings keeps how the binary was built (GOOS, GOARCH, CGO_ENABLED,
// -trimpath…) as properties of the application.
func buildSettings(info *buildinfo.BuildInfo) *[]cdx.Property {
	props := []cdx.Property{{Name: "go:toolchain", Value: info.GoVersion}}
	for _, s := range info.Settings {
		props = append(props, cdx.Property{Name: "go:build:" + s.Key, Value: s.Value})
	}
	return &props
}

// runSBOM prints the SBOM of a Go binary that is already built; the
// Dockerfile uses it so that its image carries the same file.
func runSBOM(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sbom", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	version := fs.String("version", "", "version of the application, for the SBOM")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one Go binary")
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return usageError{err}
	}
	binary, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return usageError{err}
	}
	out, err := sbom(binary, *version, created)
	if err != nil {
		return usageError{err}
	}
	_, err = stdout.Write(out)
	return err
}
