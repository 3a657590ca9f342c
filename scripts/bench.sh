#!/usr/bin/env bash
# The speed benchmark: the farm (`scrapefarm worker`) against the limit (examples/bare_loop.rs:
# navigate + wait for ready + read HTML, nothing else) and Crawlee's PlaywrightCrawler, on the same
# fixture listings, at each concurrency. Every contender's whole process tree (Chromium included)
# is measured by bench/measure.py. See bench/README.md.
#
#   scripts/bench.sh [--concurrency "1 2 4 8"] [--listings 200] [--long] [--long-pages 5000]
#                    [--contenders "farm limit shell-limit crawlee"] [--query lamp] [--amqp URL | --embedded-queue] [--keep]
#                    [--repeat N]  (N interleaved runs of each contender; the median is reported)
#                    [--no-build]  (reuse target/release binaries as they are)
#                    [--farm-args "--no-blocking"] [--limit-args "--block fetch"]
#                                  (extra flags of the worker / bare_loop, for investigations)
#                    [--results FILE]  (default bench/results-<date>.md)
#
# The farm runs on PostgreSQL and RabbitMQ (AMQP_URL, default the local broker); --embedded-queue
# keeps its jobs in the PostgreSQL database instead.
# The farm launches what it launches by default (`--cdp-browser auto`: Chromium's headless shell,
# see src/render/build.rs); `--farm-args "--cdp-browser full"` runs it on the full browser instead.
# Needs: cargo, Chromium at $CHROME_BIN (/usr/bin/chromium) and its headless shell at
# $CHROME_HEADLESS_SHELL_BIN (/usr/lib/chromium/chromium-headless-shell), PostgreSQL at $BENCH_PG
# (postgres://postgres@127.0.0.1:5432, trust auth: each farm run gets a fresh database, dropped
# afterwards unless --keep), node + npm (Crawlee is installed into bench/crawlee/node_modules).
# Writes the table to bench/results-<date>.md and raw data to .bench/<run id>/.
set -euo pipefail

CONCURRENCY="1 2 4 8"
LISTINGS=200
LONG=0
LONG_PAGES=5000
CONTENDERS="farm limit shell-limit crawlee"
QUERY=lamp
AMQP="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
KEEP=0
BUILD=1
REPEAT=1
FARM_ARGS=""
LIMIT_ARGS=""
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --listings) LISTINGS="$2"; shift 2 ;;
    --long) LONG=1; shift ;;
    --long-pages) LONG_PAGES="$2"; shift 2 ;;
    --contenders) CONTENDERS="$2"; shift 2 ;;
    --query) QUERY="$2"; shift 2 ;;
    --amqp) AMQP="$2"; shift 2 ;;
    --embedded-queue) AMQP=""; shift ;;
    --keep) KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --farm-args) FARM_ARGS="$2"; shift 2 ;;
    --limit-args) LIMIT_ARGS="$2"; shift 2 ;;
    --results) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHROME_BIN="${CHROME_BIN:-/usr/bin/chromium}"
SHELL_BIN="${CHROME_HEADLESS_SHELL_BIN:-/usr/lib/chromium/chromium-headless-shell}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
RUN_ID="$(date +%Y%m%d_%H%M%S)_$$"
WORK="$REPO/.bench/$RUN_ID"
SF="$REPO/target/release/scrapefarm"
BARE="$REPO/target/release/examples/bare_loop"
MEASURE=(python3 "$REPO/bench/measure.py")
REPORT=(python3 "$REPO/bench/report.py")
RESULTS="$WORK/results.jsonl"
mkdir -p "$WORK"
export CHROME_BIN

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }
has() { [[ " $CONTENDERS " == *" $1 "* ]]; }

FIXTURE_PIDS=()
DATABASES=()
QUEUES=()
cleanup() {
  if command -v rabbitmqctl >/dev/null 2>&1; then
    for q in "${QUEUES[@]}"; do
      for suffix in "" .dead .retry.1s .retry.5s .retry.15s .retry.60s .retry.300s .retry.900s; do
        rabbitmqctl -q delete_queue "$q$suffix" >/dev/null 2>&1 || true
      done
    done
  fi
  for pid in "${FIXTURE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ $KEEP == 0 ]]; then
    for db in "${DATABASES[@]}"; do
      psql -XAtq "$PG/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
  fi
}
trap cleanup EXIT

build() {
  if [[ $BUILD == 0 ]]; then
    log "Skipping the build (--no-build): using $SF and $BARE as they are."
  else
    log "Building release binaries (cargo build --release --locked)…"
    (cd "$REPO" && cargo build --release --locked --bin scrapefarm --example bare_loop)
  fi
  # Private copies: another build in the shared target dir must not swap binaries mid-run.
  mkdir -p "$WORK/bin"
  cp "$SF" "$BARE" "$WORK/bin/"
  SF="$WORK/bin/scrapefarm"
  BARE="$WORK/bin/bare_loop"
  if has crawlee && { [[ $BUILD == 1 ]] || [[ ! -d $REPO/bench/crawlee/node_modules ]]; }; then
    log "Installing Crawlee into bench/crawlee/node_modules (npm ci, no browser download)…"
    (cd "$REPO/bench/crawlee" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_fixture LISTINGS -> sets FIXTURE_URL (defences off: the defaults).
start_fixture() {
  local port; port="$(free_port)"
  "$SF" fixture-site --port "$port" --listings-per-query "$1" >"$WORK/fixture-$port.log" 2>&1 &
  FIXTURE_PIDS+=("$!")
  FIXTURE_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    if ! kill -0 "$!" 2>/dev/null; then echo "fixture site failed: $(cat "$WORK/fixture-$port.log")" >&2; exit 1; fi
    curl -fsS "$FIXTURE_URL/api/ground-truth?q=" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "fixture site did not answer on $FIXTURE_URL" >&2; exit 1
}

# The listing URLs of the query, gone ones included (the farm visits and stores those too).
write_urls() {
  curl -fsS "$FIXTURE_URL/api/ground-truth?q=$QUERY" |
    python3 -c 'import json, sys; print("\n".join(l["url"] for l in json.load(sys.stdin)))' >"$1"
}

# run_farm C LISTINGS FIXTURE_URL [measure options…]: enqueue into a fresh database, time the worker.
run_farm() {
  local c="$1" n="$2" base="$3"; shift 3
  local dir="$WORK/farm-c$c-n$n-r${REP:-1}" db="sf_bench_${RUN_ID}_c${c}_n${n}_r${REP:-1}"
  local url="$PG/$db"
  mkdir -p "$dir"
  psql -XAtq "$PG/postgres" -c "CREATE DATABASE $db" >/dev/null
  DATABASES+=("$db")
  local -a env=(DATABASE_URL="$url" SCRAPEFARM_QUEUE="bench_${RUN_ID}_c${c}.listings"
    SCRAPEFARM_BASE_URL="$base" SCRAPEFARM_PROFILE_DIR="$dir/profiles" SCRAPEFARM_SNAPSHOT_DIR="$dir/snapshots"
    SCRAPEFARM_SITES_DIR="$REPO/sites" SCRAPEFARM_DATA_DIR="$dir" SCRAPEFARM_READY_FILE="$dir/ready")
  if [[ -n $AMQP ]]; then env+=(AMQP_URL="$AMQP"); QUEUES+=("bench_${RUN_ID}_c${c}.listings"); fi
  local pages=$(( (n + 49) / 50 + 1 )); (( pages < 20 )) && pages=20
  env -u AMQP_URL "${env[@]}" "$SF" enqueue --site fixture --query "$QUERY" --max-pages "$pages" >"$dir/enqueue.log" 2>&1
  local load; load="$(load1)"
  log "farm C=$c: worker on $n listings (load $load)…"
  env -u AMQP_URL "${env[@]}" "${MEASURE[@]}" --out "$dir/measure.json" "$@" \
    --done-cmd "psql -XAtq '$url' -c 'SELECT max(last_enriched) FROM listings'" --extra-cmdline " $db " \
    -- "$SF" worker --concurrency "$c" --exit-when-idle 1 --worker-id bench $FARM_ARGS >"$dir/worker.log" 2>&1 || true
  local stored; stored="$(psql -XAtq "$url" -c "SELECT count(*) FROM listings WHERE status <> 'pending'")"
  "${REPORT[@]}" record --contender farm --concurrency "$c" --measure "$dir/measure.json" --stored "$stored" \
    --expected "$n" --worker-log "$dir/worker.log" --load "$load" >>"$RESULTS"
}

# run_limit C [KEY CHROMIUM]: the bare loop on the system Chromium ("limit"), or with
# "shell-limit" on the headless shell the farm launches by default (how much of the farm's lead is
# the browser build rather than the farm).
run_limit() {
  local c="$1" key="${2:-limit}" chrome="${3:-$CHROME_BIN}" dir="$WORK/${2:-limit}-c$1-r${REP:-1}"
  mkdir -p "$dir"
  local load; load="$(load1)"
  log "$key C=$c: bare_loop on $chrome (load $load)…"
  CHROME_BIN="$chrome" "${MEASURE[@]}" --out "$dir/measure.json" \
    --done-cmd "${REPORT[*]} field '$dir/out.json' done_epoch_ms" \
    -- "$BARE" --urls "$WORK/urls.txt" --concurrency "$c" --profile-dir "$dir/profile" $LIMIT_ARGS >"$dir/out.json" 2>"$dir/stderr.log" || true
  "${REPORT[@]}" record --contender "$key" --concurrency "$c" --measure "$dir/measure.json" \
    --program-json "$dir/out.json" --expected "$LISTINGS" --load "$load" >>"$RESULTS"
}

run_crawlee() {
  local c="$1" dir="$WORK/crawlee-c$1-r${REP:-1}"
  mkdir -p "$dir"
  local load; load="$(load1)"
  log "crawlee C=$c: PlaywrightCrawler (load $load)…"
  (cd "$dir" && BENCH_URLS="$WORK/urls.txt" BENCH_CONCURRENCY="$c" CRAWLEE_STORAGE_DIR="$dir/storage" \
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "${MEASURE[@]}" --out "$dir/measure.json" \
    --done-cmd "${REPORT[*]} field '$dir/out.json' done_epoch_ms" \
    -- node "$REPO/bench/crawlee/crawl.mjs" >"$dir/out.json" 2>"$dir/stderr.log") || true
  local stored; stored="$(find "$dir/storage/datasets/default" -name '*.json' 2>/dev/null | wc -l)"
  "${REPORT[@]}" record --contender crawlee --concurrency "$c" --measure "$dir/measure.json" --stored "$stored" \
    --expected "$LISTINGS" --load "$load" >>"$RESULTS"
}

run_long() {
  log "Long run: $LONG_PAGES pages through one farm worker at concurrency 4…"
  start_fixture "$LONG_PAGES"
  local dir="$WORK/farm-c4-n$LONG_PAGES-r1" db="sf_bench_${RUN_ID}_c4_n${LONG_PAGES}_r1"
  REP=1 RESULTS="$WORK/long.jsonl" run_farm 4 "$LONG_PAGES" "$FIXTURE_URL" --interval 0.2 --progress-every 1 \
    --series "$dir/series.jsonl" --devtools-profile "$dir/profiles/bench" \
    --progress-sql "$PG/$db" "SELECT count(*) FROM listings WHERE status <> 'pending'"
  "${REPORT[@]}" long "$dir/series.jsonl" "$dir/measure.json" --at 1000 --end "$LONG_PAGES" >"$WORK/long.md"
}

main() {
  build
  if has shell-limit && [[ ! -x $SHELL_BIN ]]; then
    log "Skipping shell-limit: no headless shell at $SHELL_BIN (scripts/setup.sh installs it)."
    CONTENDERS="${CONTENDERS/shell-limit/}"
  fi
  log "Run $RUN_ID: contenders [$CONTENDERS], concurrency [$CONCURRENCY], $LISTINGS listings; raw data in $WORK"
  local load_start; load_start="$(cat /proc/loadavg)"
  QUEUE_KIND="embedded (in the PostgreSQL database)"
  if [[ -n $AMQP ]]; then QUEUE_KIND="RabbitMQ"; fi
  if [[ -n $CONTENDERS ]]; then
    start_fixture "$LISTINGS"
    write_urls "$WORK/urls.txt"
    for c in $CONCURRENCY; do
      for REP in $(seq "$REPEAT"); do
        if has farm; then run_farm "$c" "$LISTINGS" "$FIXTURE_URL"; fi
        if has limit; then run_limit "$c"; fi
        if has shell-limit; then run_limit "$c" shell-limit "$SHELL_BIN"; fi
        if has crawlee; then run_crawlee "$c"; fi
        sleep 2
      done
    done
  fi
  local out="${OUT:-$REPO/bench/results-$(date +%Y-%m-%d).md}"
  : >"$WORK/table.md"
  if [[ -s $RESULTS ]]; then
    "${REPORT[@]}" table "$RESULTS" --title "Run $RUN_ID ($LISTINGS listings, query \"$QUERY\")" \
      --meta "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; Chromium $("$CHROME_BIN" --version 2>/dev/null | awk '{print $2}'); commit $(git -C "$REPO" rev-parse --short HEAD)" \
      --meta "load average at start: $load_start; at end: $(cat /proc/loadavg)" \
      --meta "queue: $QUEUE_KIND; command: scripts/bench.sh --concurrency \"$CONCURRENCY\" --listings $LISTINGS --repeat $REPEAT${FARM_ARGS:+ --farm-args \"$FARM_ARGS\"}${LIMIT_ARGS:+ --limit-args \"$LIMIT_ARGS\"}" \
      >"$WORK/table.md"
  fi
  if [[ $LONG == 1 ]]; then
    run_long
    printf '\n- load average after the long run: %s\n\n' "$(cat /proc/loadavg)" >>"$WORK/long.md"
  fi
  local parts=("$WORK/table.md")
  if [[ $LONG == 1 ]]; then parts+=("$WORK/long.md"); fi
  cat "${parts[@]}" | tee -a "$out"
  echo | tee -a "$out" >/dev/null
  log "Appended to $out"
}

main
