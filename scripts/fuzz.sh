#!/usr/bin/env bash
# Runs every fuzz target of the product module briefly: FUZZTIME executions
# each (or a duration such as 30s). The default is a count, not a duration:
# Go 1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" failure when a duration ends while a worker is mid-call on a
# busy machine (go.dev/issue/75804, fixed in Go 1.27); a count has no
# deadline to race.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20000x}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  # Read the targets first: go test must not eat the loop's input.
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | cut -d' ' -f2 || true)
  while read -r target; do
    [ -n "$target" ] || continue
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" </dev/null
  done <<<"$targets"
done
