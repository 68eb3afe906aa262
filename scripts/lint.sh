#!/usr/bin/env bash
# gofmt and go vet over every Go module in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi
for mod in $(git ls-files 'go.mod' '*/go.mod'); do
  dir=$(dirname "$mod")
  echo "go vet in $dir"
  (cd "$dir" && go vet ./...)
done
