#!/usr/bin/env bash
# The e2e flow on a laptop with Docker, using kind instead of the harness's
# cluster built from source. UNTESTED IN CI: the CI machine has no Docker.
#
#   test/e2e/kind.sh up     create the cluster, load the image, apply, draw
#   test/e2e/kind.sh draw   audit the odds again (-n and --expect as below)
#   test/e2e/kind.sh down   delete the cluster
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${KIND_CLUSTER:-omikuji}
context=kind-$cluster
draws=${DRAWS:-5000}
# The NodePort, published on this machine's loopback only.
url=http://127.0.0.1:30081/

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "kind.sh: needs $tool in PATH" >&2; exit 1; }
  done
}

draw() {
  # One draw at a time, as the e2e does: start order is then the balancer's order (docs/e2e.md).
  go run ./cmd/omikuji draw "$url" -n "$draws" -c 1 "$@"
}

up() {
  need kind docker kubectl go
  if ! kind get clusters | grep -qx "$cluster"; then
    kind create cluster --name "$cluster" --config - <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 30081
        hostPort: 30081
        listenAddress: 127.0.0.1
        protocol: TCP
YAML
  fi
  mkdir -p dist
  go run ./tools/image build -o dist/omikuji-image.tar --tag omikuji:dev
  kind load image-archive dist/omikuji-image.tar --name "$cluster"
  kubectl --context "$context" apply -k deploy/kustomize/overlays/local
  for d in great-fortune middle-fortune small-fortune misfortune; do
    kubectl --context "$context" -n omikuji rollout status "deployment/$d" --timeout=3m
  done
  # Ready is not yet programmed by kube-proxy: give it a moment.
  sleep 5
  draw
  echo "kind.sh: try kubectl --context $context -n omikuji scale deployment great-fortune --replicas=4,"
  echo "         then DRAWS=$draws test/e2e/kind.sh draw --expect great-fortune=4,middle-fortune=2,small-fortune=6,misfortune=1"
}

case "${1:-}" in
  up) up ;;
  draw) shift; need go; draw "$@" ;;
  down) need kind; kind delete cluster --name "$cluster" ;;
  *) echo "usage: test/e2e/kind.sh up | draw [omikuji draw flags] | down" >&2; exit 2 ;;
esac
