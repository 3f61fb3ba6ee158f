#!/usr/bin/env bash
# What a Deno program can do serving one cached file to many clients at once,
# against nginx with sendfile: prints, per round and server, the seconds the
# clients needed and the CPU seconds the server used, then each server's peak
# and current RSS, and checks one download from each. Everything lives on
# tmpfs. The servers are in serve_limits/; pick some with CANDIDATES, each
# NAME or NAME:ARG,ARG (arguments after the port and the file).
#
# Usage: bench/serve_limits.sh [MiB=256] [rounds=3] [clients=20]
# Needs deno, nginx (bash .ci/setup --bench), curl, python3.
set -u
MIB=${1:-256}
ROUNDS=${2:-3}
CLIENTS=${3:-20}
CANDIDATES=${CANDIDATES:-"deno_serve_readable node_http_pipe node_http_loop raw_tcp raw_tcp:256 raw_tcp:256,sync ironcore_direct ironcore_deno"}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v nginx >/dev/null || { echo "nginx is missing: bash .ci/setup --bench installs it" >&2; exit 1; }
W=$(mktemp -d /dev/shm/serve-limits.XXXXXX)
chmod 755 "$W"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
head -c $((MIB << 20)) /dev/urandom >"$W/blob"
chmod 644 "$W/blob"
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu() { # CPU seconds of a process and its children, in clock ticks
  local t=0 p
  for p in $(pgrep -P "$1") "$1"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$t"
}
declare -A URL PID
NP=$(port)
printf 'daemon off; worker_processes 2; user root; pid %s/ng.pid; error_log %s/ng.err;\nevents { worker_connections 1024; }\nhttp { access_log off; sendfile on; server { listen 127.0.0.1:%s; root %s; } }\n' \
  "$W" "$W" "$NP" "$W" >"$W/ng.conf"
nginx -c "$W/ng.conf" &
pids+=($!)
PID[nginx]=$!
URL[nginx]="http://127.0.0.1:$NP/blob"
for c in $CANDIDATES; do
  script=${c%%:*}
  args=()
  [[ $c == *:* ]] && IFS=, read -r -a args <<<"${c#*:}"
  p=$(port)
  deno run -A --quiet "$HERE/serve_limits/$script.ts" "$p" "$W/blob" "${args[@]}" &
  pids+=($!)
  PID[$c]=$!
  URL[$c]="http://127.0.0.1:$p/"
done
for k in nginx $CANDIDATES; do
  for _ in $(seq 200); do curl -sf -o /dev/null -r 0-0 "${URL[$k]}" && break; sleep 0.1; done
done
run() { # URL PID: wall seconds of CLIENTS downloads and the server's CPU seconds
  local s=$EPOCHREALTIME c=() c0
  c0=$(cpu "$2")
  for _ in $(seq "$CLIENTS"); do curl -sf -o /dev/null "$1" & c+=($!); done
  wait "${c[@]}"
  printf '%.2f s (cpu %.2f)' "$(echo "$EPOCHREALTIME - $s" | bc)" \
    "$(echo "($(cpu "$2") - $c0) / $(getconf CLK_TCK)" | bc -l)"
}
echo "$CLIENTS clients x $MIB MiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for k in nginx $CANDIDATES; do echo "round $r  $k  $(run "${URL[$k]}" "${PID[$k]}")"; done
done
want=$(sha256sum <"$W/blob")
for k in $CANDIDATES; do
  rss=$(awk '/VmHWM|VmRSS/ {printf "%s %d MiB  ", $1, $2 / 1024}' "/proc/${PID[$k]}/status")
  got=$(curl -sf "${URL[$k]}" | sha256sum)
  echo "$k  $rss$([ "$got" = "$want" ] && echo "bytes ok" || echo "BYTES WRONG")"
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
