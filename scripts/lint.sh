#!/usr/bin/env bash
# gofmt, go vet and staticcheck over every Go module in the repository.
# staticcheck is built from the Go module proxy at a pinned version and kept
# in the user's cache, so a fresh machine needs nothing preinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
staticcheck_version=v0.8.2
tools="${XDG_CACHE_HOME:-$HOME/.cache}/omikuji/tools/staticcheck-$staticcheck_version"
if [ ! -x "$tools/staticcheck" ]; then
  echo "installing staticcheck $staticcheck_version into $tools"
  GOBIN="$tools" GOFLAGS='' go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi
for mod in $(git ls-files 'go.mod' '*/go.mod'); do
  dir=$(dirname "$mod")
  echo "go vet and staticcheck in $dir"
  (cd "$dir" && go vet ./... && "$tools/staticcheck" ./...)
done
