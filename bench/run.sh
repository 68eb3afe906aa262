#!/usr/bin/env bash
# Server CPU time per draw: omikuji vs nginx (the same page as a static file)
# vs the original's Node/Express shape (bench/express), measured side by side.
#
#   bench/run.sh [--rounds 5] [--duration 10] [--connections 32] [--hog]
#
# Each server is pinned to CPU 0 and wrk to CPU 1. Rounds interleave the
# servers (ours, nginx, express, ours, ...) so that slow drifts in the
# machine's noise hit all three alike. The primary figure is the server
# process's utime+stime (/proc/PID/stat) divided by the requests wrk counted:
# unlike req/s it barely moves when other work shares the machine. Two modes:
# "close" sends Connection: close (a new TCP connection per draw, as the
# balancer needs) for the HTML page; "keep-alive" reuses connections and asks
# for JSON, against `omikuji serve --keep-alive`. --hog adds a busy loop at
# nice 19 on the servers' CPU. Startup time and idle RSS come from
# bench/startup. BENCH_OMIKUJI=path benchmarks that binary instead of building
# ./cmd/omikuji; BENCH_OMIKUJI="name=path name=path ..." benchmarks several
# builds side by side in the same rounds (an A/B). BENCH_PORT moves the ports
# used (default 38081 upwards: two per build, then three more).
# Only 127.0.0.1 is used; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
duration=10
connections=32
hog=false
base_port=${BENCH_PORT:-38080}

usage() {
  echo "usage: bench/run.sh [--rounds N] [--duration SECONDS] [--connections N] [--hog]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=${2:-}; shift 2 || usage ;;
    --duration) duration=${2:-}; shift 2 || usage ;;
    --connections) connections=${2:-}; shift 2 || usage ;;
    --hog) hog=true; shift ;;
    -h | --help) usage ;;
    *) echo "bench: unknown argument $1" >&2; usage ;;
  esac
done
for n in "$rounds" "$duration" "$connections" "$base_port"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: $n is not a positive whole number" >&2; usage; }
done

for tool in go wrk nginx node npm curl taskset getconf; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (scripts/deps.sh installs nginx-light and wrk)" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs two CPUs (one for the servers, one for wrk)" >&2
  exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }

# Every omikuji serve puts its metrics on a free port (older builds without
# --metrics-addr ignore the variable).
export OMIKUJI_METRICS_ADDR=127.0.0.1:0

# --- build ------------------------------------------------------------------
# builds: the omikuji binaries to compare, each "name=path".
log "building omikuji, bench/startup and the Express yardstick"
builds=()
if [ -n "${BENCH_OMIKUJI:-}" ]; then
  for b in $BENCH_OMIKUJI; do
    [[ $b == *=* ]] || b="omikuji=$b"
    if ! [[ ${b%%=*} =~ ^[a-z0-9-]+$ ]] || ! [ -x "${b#*=}" ]; then
      log "BENCH_OMIKUJI: $b: want name=path to a binary"
      exit 2
    fi
    builds+=("$b")
  done
else
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/omikuji" ./cmd/omikuji
  builds=("omikuji=$tmp/omikuji")
fi
ours=() # the builds' names, in order
declare -A bin port port_ka
p=$((base_port + 1))
for b in "${builds[@]}"; do
  name=${b%%=*}
  ours+=("$name")
  bin[$name]=${b#*=}
  port[$name]=$p
  port_ka[$name]=$((p + 1))
  p=$((p + 2))
done
servers=("${ours[@]}" nginx express)
port_nginx=$p
port_express=$((p + 1))
port_startup=$((p + 2))
go build -o "$tmp/startup" ./bench/startup
(cd bench/express && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# nginx_conf DIR PORT writes a config for an nginx prefix directory.
nginx_conf() {
  mkdir -p "$1/tmp"
  sed -e "s|@PORT@|$2|" -e "s|@ROOT@|$tmp/www|" bench/nginx.conf >"$1/nginx.conf"
}

# wait_up URL: poll until the server answers, for at most five seconds.
wait_up() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.05
  done
  log "no answer from $1"
  return 1
}

# free PORT: fail early if something already listens there.
free() {
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
    log "127.0.0.1:$1 is in use; set BENCH_PORT to another base port"
    exit 1
  fi
}

# start NAME URL COMMAND...: run a server pinned to CPU 0; sets pid[NAME].
declare -A pid
start() {
  local name=$1 url=$2
  shift 2
  taskset -c 0 "$@" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
  pid[$name]=$!
  wait_up "$url" || { cat "$tmp/$name.log" >&2; exit 1; }
}

for p in $(seq $((base_port + 1)) "$port_startup"); do free "$p"; done

# --- the same bytes everywhere ------------------------------------------------
declare -A url pid_of
for name in "${ours[@]}"; do
  start "$name" "http://127.0.0.1:${port[$name]}/" "${bin[$name]}" serve --fortune great-fortune --drain 0s --addr "127.0.0.1:${port[$name]}"
  start "$name-ka" "http://127.0.0.1:${port_ka[$name]}/" "${bin[$name]}" serve --fortune great-fortune --drain 0s --keep-alive --addr "127.0.0.1:${port_ka[$name]}"
  url[close:$name]="http://127.0.0.1:${port[$name]}/"
  url[keep-alive:$name]="http://127.0.0.1:${port_ka[$name]}/"
  pid_of[close:$name]=${pid[$name]}
  pid_of[keep-alive:$name]=${pid[$name-ka]}
done
mkdir -p "$tmp/www"
curl -sf -o "$tmp/www/index.html" "${url[close:${ours[0]}]}"
curl -sf -H 'Accept: application/json' -o "$tmp/www/slip.json" "${url[keep-alive:${ours[0]}]}"
nginx_conf "$tmp/nginx" "$port_nginx"
start nginx "http://127.0.0.1:$port_nginx/index.html" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"
start express "http://127.0.0.1:$port_express/" node bench/express/server.js "$port_express" "$tmp/www/index.html" "$tmp/www/slip.json"

# Each server's URL per mode, and a check that all send the same body.
url[close:nginx]="http://127.0.0.1:$port_nginx/index.html"
url[close:express]="http://127.0.0.1:$port_express/"
url[keep-alive:nginx]="http://127.0.0.1:$port_nginx/slip.json"
url[keep-alive:express]="http://127.0.0.1:$port_express/slip.json"
declare -A accept=([close]='text/html' [keep-alive]='application/json')
for mode in close keep-alive; do
  pid_of[$mode:nginx]=${pid[nginx]}
  pid_of[$mode:express]=${pid[express]}
  want=$tmp/www/index.html
  [ "$mode" = keep-alive ] && want=$tmp/www/slip.json
  for server in "${servers[@]}"; do
    curl -sf -H "Accept: ${accept[$mode]}" -o "$tmp/check" "${url[$mode:$server]}"
    cmp -s "$tmp/check" "$want" || { log "$server ($mode) does not serve the same bytes as omikuji"; exit 1; }
  done
done

# --- startup and idle memory ---------------------------------------------------
startup_url="http://127.0.0.1:$port_startup"
nginx_conf "$tmp/nginx-startup" "$port_startup"
declare -A startup_cmd=(
  [nginx]="nginx -p $tmp/nginx-startup -c $tmp/nginx-startup/nginx.conf"
  [express]="node bench/express/server.js $port_startup $tmp/www/index.html $tmp/www/slip.json"
)
declare -A startup_path=([nginx]=/index.html [express]=/)
for name in "${ours[@]}"; do
  startup_cmd[$name]="${bin[$name]} serve --fortune great-fortune --drain 0s --addr 127.0.0.1:$port_startup"
  startup_path[$name]=/
done
declare -A start_ms rss_kib
for server in "${servers[@]}"; do
  log "startup and idle RSS: $server"
  # shellcheck disable=SC2086 # the command line is split on purpose
  line=$("$tmp/startup" -runs 10 -url "$startup_url${startup_path[$server]}" -- taskset -c 0 ${startup_cmd[$server]} | grep '^RESULT')
  start_ms[$server]=$(sed -E 's/.*start_ms=([0-9.]+).*/\1/' <<<"$line")
  rss_kib[$server]=$(sed -E 's/.*rss_kib=([0-9]+).*/\1/' <<<"$line")
done

# --- the rounds ----------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)

# cpu_ticks PID: utime+stime of the whole process, in clock ticks. Fields are
# counted after the ")" that ends the command name, which may hold spaces.
cpu_ticks() {
  local stat fields
  stat=$(<"/proc/$1/stat")
  read -ra fields <<<"${stat##*) }"
  echo $((fields[11] + fields[12]))
}

# measure MODE SERVER SECONDS: one wrk run; prints
# "cpu_us_per_request requests_per_second p99_ms errors requests".
measure() {
  local mode=$1 server=$2 secs=$3 pid before after out result
  local -a headers=()
  pid=${pid_of[$mode:$server]}
  if [ "$mode" = close ]; then
    headers=(-H 'Connection: close')
  else
    headers=(-H 'Accept: application/json')
  fi
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c "$connections" -d "${secs}s" --timeout 5s -s bench/report.lua "${headers[@]}" "${url[$mode:$server]}")
  after=$(cpu_ticks "$pid")
  result=$(grep '^RESULT' <<<"$out") || { log "no result from wrk: $out"; exit 1; }
  awk -v r="$result" -v ticks=$((after - before)) -v hz="$clk_tck" 'BEGIN {
    n = split(r, kv, /[ =]/)
    for (i = 2; i < n; i += 2) v[kv[i]] = kv[i + 1]
    if (v["requests"] == 0) { print "wrk served no requests" > "/dev/stderr"; exit 1 }
    if (v["errors"] * 100 > v["requests"]) printf "bench: warning: %d errors in %d requests\n", v["errors"], v["requests"] > "/dev/stderr"
    printf "%.2f %.0f %.3f %d %d\n", ticks * 1e6 / hz / v["requests"], v["requests"] * 1e6 / v["duration_us"], v["p99_us"] / 1000, v["errors"], v["requests"]
  }'
}

if $hog; then
  log "CPU hog: a busy loop at nice 19 on CPU 0"
  nice -n 19 taskset -c 0 bash -c 'while :; do :; done' &
  pids+=("$!")
fi

log "warm-up: 2 s per server and mode"
for mode in close keep-alive; do
  for server in "${servers[@]}"; do
    measure "$mode" "$server" 2 >/dev/null
  done
done

results=$tmp/results
: >"$results"
total=$((2 * rounds * ${#servers[@]}))
run=0
for mode in close keep-alive; do
  for round in $(seq "$rounds"); do
    for server in "${servers[@]}"; do
      run=$((run + 1))
      line=$(measure "$mode" "$server" "$duration")
      log "[$run/$total] $mode round $round $server: $line"
      echo "$mode $server $round $line" >>"$results"
    done
  done
done

# --- report ----------------------------------------------------------------------
# median MODE SERVER COLUMN over the rounds (columns: 4 cpu, 5 req/s, 6 p99).
median() {
  awk -v m="$1" -v s="$2" -v c="$3" '$1 == m && $2 == s { print $c }' "$results" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Versions: $(go version | cut -d' ' -f3), $(nginx -v 2>&1 | cut -d' ' -f3), node $(node --version), express $(node -p "require('./bench/express/node_modules/express/package.json').version"), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
echo "Settings: $rounds interleaved rounds of ${duration} s per server and mode, $connections connections, wrk -t1 on CPU 1, servers on CPU 0, CPU hog: $hog."
echo
for mode in close keep-alive; do
  if [ "$mode" = close ]; then
    echo "### New connection per draw (Connection: close, HTML page)"
  else
    echo "### Keep-alive (JSON; omikuji serve --keep-alive)"
  fi
  echo
  echo "| server | CPU µs/request | × nginx | × nginx, range over rounds | req/s | × nginx | p99 ms | × nginx | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  ref_cpu=$(median "$mode" nginx 4)
  ref_rps=$(median "$mode" nginx 5)
  ref_p99=$(median "$mode" nginx 6)
  for server in "${servers[@]}"; do
    cpu=$(median "$mode" "$server" 4)
    rps=$(median "$mode" "$server" 5)
    p99=$(median "$mode" "$server" 6)
    errors=$(awk -v m="$mode" -v s="$server" '$1 == m && $2 == s { e += $7 } END { print e + 0 }' "$results")
    name=$server
    # The CPU ratio within each round, where both ran minutes apart at most.
    range=$(awk -v m="$mode" -v s="$server" '$1 == m && $2 == "nginx" { ref[$3] = $4 } $1 == m && $2 == s { own[$3] = $4 }
      END { for (r in own) { x = own[r] / ref[r]; if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x } printf "%.2f–%.2f", lo, hi }' "$results")
    awk -v n="$name" -v c="$cpu" -v r="$rps" -v p="$p99" -v rc="$ref_cpu" -v rr="$ref_rps" -v rp="$ref_p99" -v e="$errors" -v g="$range" \
      'BEGIN { printf "| %s | %.1f | %.2f | %s | %.0f | %.2f | %.2f | %.2f | %d |\n", n, c, c / rc, g, r, r / rr, p, p / rp, e }'
  done
  cpu_ours=$(median "$mode" "${ours[0]}" 4)
  cpu_express=$(median "$mode" express 4)
  awk -v n="${ours[0]}" -v o="$cpu_ours" -v x="$cpu_express" 'BEGIN { printf "\nExpress spends %.1f× %s'\''s CPU per request.\n\n", x / o, n }'
done

echo "### Startup and memory (median of 10 starts, pinned to CPU 0)"
echo
echo "| server | exec to first 200, ms | idle RSS, MiB |"
echo "|---|---:|---:|"
for server in "${servers[@]}"; do
  awk -v n="$server" -v s="${start_ms[$server]}" -v r="${rss_kib[$server]}" 'BEGIN { printf "| %s | %.1f | %.1f |\n", n, s, r / 1024 }'
done
echo
echo "<details><summary>Every run (mode, server, round, CPU µs/request, req/s, p99 ms, errors, requests)</summary>"
echo
echo '```'
cat "$results"
echo '```'
echo
echo "</details>"
