// Command monitoring writes the Prometheus rule files that name fortunes,
// from the catalogue in internal/fortune. Run it from deploy/ with
// `go generate` (or `go run ./cmd/monitoring`); the deploy tests fail when
// the committed files differ from what it writes.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/omikuji/omikuji/deploy"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: go run ./cmd/monitoring (from deploy/; no arguments)")
		os.Exit(2)
	}
	files, err := deploy.GeneratedFiles()
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitoring:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "monitoring:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(name, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "monitoring:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", name)
	}
}
