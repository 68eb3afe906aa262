#!/usr/bin/env bash
# Time to verdict of `kubectl omikuji audit` on the e2e cluster, against the
# same draws made from the host. Brings up the two-node cluster of make e2e
# (kube-proxy in --mode), imports the image, applies the local overlay, and
# per round times, back to back:
#   audit  kubectl omikuji audit svc/omikuji -n omikuji --draws N
#          (pods created, drawn, logs read, pods deleted and gone)
#   host   the same draws without pods: omikuji draw -n N -c 4 through each
#          node's ClusterIP and NodePort, from each node's network namespace,
#          all four at once as the audit pods draw
# The difference is what running in the cluster costs. Needs root, like make e2e.
#
#   sudo bench/audit.sh [--rounds R] [--draws N] [--mode iptables|nftables]
#
# Prints a Markdown table: each round's two wall times and their difference,
# then the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 draws=5000 mode=iptables
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --draws) draws=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    *) echo "usage: bench/audit.sh [--rounds R] [--draws N] [--mode iptables|nftables]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root, as make e2e does" >&2; exit 1; }
root=$PWD
tmp=$(mktemp -d)
cleanup() {
  (cd "$root/test/e2e" && go run ./cmd/cluster down >/dev/null 2>&1) || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/omikuji" ./cmd/omikuji
go build -o "$tmp/kubectl-omikuji" ./cmd/kubectl-omikuji
go run ./tools/image build -o "$tmp/image.tar" >/dev/null
(cd test/e2e && go run ./cmd/cluster up -mode "$mode" >"$tmp/up.log" && go run ./cmd/cluster import "$tmp/image.tar" >/dev/null) || { cat "$tmp/up.log" >&2; exit 1; }
KUBECONFIG=$(sed -n 's/^ *export KUBECONFIG=//p' "$tmp/up.log")
export KUBECONFIG
netns=$(sed -n 's/.*(ip netns exec \([^ ]*\) .*/\1/p' "$tmp/up.log" | head -1)
[ -n "$netns" ] || { echo "bench: the cluster has no second node" >&2; exit 1; }
kubectl apply -k deploy/kustomize/overlays/local >/dev/null
for d in great-fortune middle-fortune small-fortune misfortune; do
  kubectl -n omikuji rollout status "deploy/$d" --timeout=3m >/dev/null
done
clusterip=$(kubectl -n omikuji get svc omikuji -o jsonpath='{.spec.clusterIP}')
port=$(kubectl -n omikuji get svc omikuji -o jsonpath='{.spec.ports[0].port}')
nodeport=$(kubectl -n omikuji get svc omikuji -o jsonpath='{.spec.ports[0].nodePort}')
mapfile -t ips < <(kubectl get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' | sort)
# Until every pod answers through both nodes: Ready is not yet programmed.
for _ in $(seq 60); do
  ok=1
  for url in "http://$clusterip:$port/" "http://${ips[0]}:$nodeport/"; do
    "$tmp/omikuji" draw "$url" -n 400 -c 4 >/dev/null 2>&1 || ok=0
  done
  [ $ok = 1 ] && break
  sleep 1
done

now() { date +%s.%N; }
host_draws() {
  local pids=()
  "$tmp/omikuji" draw "http://$clusterip:$port/" -n "$draws" -c 4 --json >/dev/null 2>&1 & pids+=($!)
  "$tmp/omikuji" draw "http://${ips[0]}:$nodeport/" -n "$draws" -c 4 --json >/dev/null 2>&1 & pids+=($!)
  ip netns exec "$netns" "$tmp/omikuji" draw "http://$clusterip:$port/" -n "$draws" -c 4 --json >/dev/null 2>&1 & pids+=($!)
  ip netns exec "$netns" "$tmp/omikuji" draw "http://${ips[1]}:$nodeport/" -n "$draws" -c 4 --json >/dev/null 2>&1 & pids+=($!)
  # Exit 1 is a verdict, not a failed run; only 2 is.
  for p in "${pids[@]}"; do wait "$p" || [ $? -eq 1 ]; done
}
echo "| round | audit (s) | host (s) | in-cluster overhead (s) |"
echo "|---:|---:|---:|---:|"
: >"$tmp/rows"
for r in $(seq "$rounds"); do
  t0=$(now)
  code=0
  "$tmp/kubectl-omikuji" audit svc/omikuji -n omikuji --draws "$draws" -q >"$tmp/audit.out" 2>&1 || code=$?
  t1=$(now)
  [ $code -le 1 ] || { cat "$tmp/audit.out" >&2; exit 1; }
  host_draws
  t2=$(now)
  row=$(python3 -c "a=$t1-$t0; h=$t2-$t1; print(f'{a:.2f} {h:.2f} {a-h:.2f}')")
  echo "$row" >>"$tmp/rows"
  read -r a h o <<<"$row"
  echo "| $r | $a | $h | $o |"
done
python3 - "$tmp/rows" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
a, h, o = (statistics.median(c) for c in zip(*rows))
print(f"| median | {a:.2f} | {h:.2f} | {o:.2f} |")
EOF
