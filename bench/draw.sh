#!/usr/bin/env bash
# The auditor's speed: draws per second of `omikuji draw` against
# `omikuji local` (replicas behind the L4 balancer) and against a single
# `omikuji serve` replica, at -c 1, 4 and 16, each as a ratio to wrk with
# `Connection: close` (a new connection per request, as every draw is) on
# the same target, measured right before it in the same run. wrk sends the
# auditor's Accept header, so both ask for the same answer (JSON). A draw is
# timed as a whole process: start, drawing, statistics and report.
#
#   bench/draw.sh [--rounds R] [--seconds S]
#
# Prints a Markdown table: target, -c, draws/s and wrk req/s (medians of
# the rounds), the median ratio and each round's ratio (wrk, then draw,
# back to back).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 seconds=4
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "usage: bench/draw.sh [--rounds R] [--seconds S]" >&2; exit 2 ;;
  esac
done
for tool in go wrk python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/deps.sh installs wrk)" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/omikuji" ./cmd/omikuji
port_local=$((20000 + RANDOM % 20000))
port_serve=$((port_local + 1))
"$tmp/omikuji" local --addr "127.0.0.1:$port_local" --seed 1 --metrics-addr "" >"$tmp/local.log" 2>&1 &
pids+=($!)
"$tmp/omikuji" serve --fortune small-fortune --addr "127.0.0.1:$port_serve" --log-level warn >"$tmp/serve.log" 2>&1 &
pids+=($!)
for port in "$port_local" "$port_serve"; do
  up=false
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=true; break; }
    sleep 0.05
  done
  $up || { echo "bench: nothing listens on 127.0.0.1:$port" >&2; cat "$tmp"/*.log >&2; exit 1; }
done

# draws_per_second URL C RATE: runs omikuji draw for about $seconds seconds
# at the rate wrk just reached.
draws_per_second() {
  local n=$(( $3 * seconds ))
  local start end
  start=$(date +%s.%N)
  "$tmp/omikuji" draw "$1" -n "$n" -c "$2" --json --alpha 0.5 >"$tmp/report.json" || true
  end=$(date +%s.%N)
  python3 -c "import json,sys; r=json.load(open('$tmp/report.json')); f=r['failed']; assert f == 0, f'{f} failed draws'; print(r['draws']/($end-$start))"
}
# wrk_rate URL C
wrk_rate() {
  wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${seconds}s" -H 'Connection: close' -H 'Accept: application/json' "$1" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| target | -c | omikuji draw, draws/s | wrk Connection: close, req/s | ratio (median) | ratio per round |"
echo "|---|---|---|---|---|---|"
for target in local serve; do
  if [ "$target" = local ]; then url="http://127.0.0.1:$port_local/"; else url="http://127.0.0.1:$port_serve/"; fi
  for c in 1 4 16; do
    : >"$tmp/ratios"; : >"$tmp/draws"; : >"$tmp/wrk"
    wrk_rate "$url" "$c" >/dev/null # warm-up
    for _ in $(seq "$rounds"); do
      w=$(wrk_rate "$url" "$c")
      d=$(draws_per_second "$url" "$c" "${w%.*}")
      echo "$w" >>"$tmp/wrk"; echo "$d" >>"$tmp/draws"
      python3 -c "print($d/$w)" >>"$tmp/ratios"
    done
    printf '| %s | %d | %.0f | %.0f | %.2f× | %s |\n' "$target" "$c" "$(median <"$tmp/draws")" "$(median <"$tmp/wrk")" "$(median <"$tmp/ratios")" \
      "$(xargs printf '%.2f ' <"$tmp/ratios")"
  done
done
