#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Needs root.
set -euo pipefail
packages=(
  chromium            # browser tests: what a person sees
  fonts-ipafont-mincho  # kanji in the browser's screenshots of the slip
  prometheus          # promtool (metrics, rules and their unit tests); the e2e's Prometheus server
  shellcheck          # infra scripts, the bash completion
  zsh                 # the zsh completion
  nginx-light wrk     # benchmark yardstick and load generator
  libnginx-mod-stream # nginx stream balancers audited by omikuji draw's tests
  containerd runc containernetworking-plugins  # real-cluster e2e (etcd is built with Kubernetes)
  iptables nftables conntrack openssl
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
