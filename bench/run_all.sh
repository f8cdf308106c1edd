#!/usr/bin/env bash
# Runs every benchmark figure in order; each appends its section to bench/RESULTS.md.
#   bench/run_all.sh            every figure but the opt-in ones (about 35 minutes on 2 cores)
#   bench/run_all.sh --quick    shorter runs, for checking the harness itself
# Builds once (release: the gateway, the fake CLI, the load generator, the bare-stack server).
# Every script bounds its own time and stops every process it started; a failing figure is
# reported and the others still run. Traffic stays on 127.0.0.1.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="$ROOT/.tools/venv/bin/python"
[[ -x "$PY" ]] || PY="$(command -v python3)"
[[ -n "$PY" ]] || { echo "run_all: python3 not found" >&2; exit 1; }

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "run_all: unknown option $arg" >&2; exit 2 ;;
  esac
done

echo "run_all: cargo build --release --bins --example loadgen --example baseline"
cargo build --release --bins --example loadgen --example baseline || exit 1
export CCGW_BENCH_NO_BUILD=1

if [[ $quick -eq 1 ]]; then
  mixed=(--conversations 10); ttft=(--runs 3); overhead=(--duration 3 --conversations 100)
  conc=(--concurrency 200 --chunk-delay-ms 100); startup=(--runs 3); models=(--duration 3)
  climem=(--conversations 2 --turns 2); sessions=(--sessions 100 --rounds 2); real_sessions=(--rounds 2); conns=(--connections 1000 --duration 3)
else
  mixed=(); ttft=(); overhead=(); conc=(); startup=(); models=(); climem=(); sessions=(); real_sessions=(); conns=()
fi

failed=()
run() {
  local name="$1"; shift
  echo "run_all: ==> $name: $*"
  # A hard stop beyond the script's own limit, in case it hangs before setting it.
  if ! timeout --kill-after=10 900 "$PY" "$@"; then
    failed+=("$name")
    echo "run_all: <== $name FAILED" >&2
  fi
}

if [[ -x "$ROOT/.tools/cli/node_modules/.bin/claude" || -n "${CCGW_BENCH_CLAUDE_BIN:-}" ]]; then
  run "figure 0 (mixed traffic TTFT vs direct CLI)" bench/mixed.py "${mixed[@]+"${mixed[@]}"}"
  run "figures 1-2 (TTFT vs direct CLI)" bench/ttft.py "${ttft[@]+"${ttft[@]}"}"
  run "figure 11 (memory of live CLI processes)" bench/cli_memory.py "${climem[@]+"${climem[@]}"}"
else
  echo "run_all: skipping figures 0-2 and 11: the real CLI is not installed (scripts/setup.sh --cli)" >&2
  failed+=("figures 0-2, 11 (no CLI)")
fi
run "figure 3 (overhead at 500 req/s)" bench/overhead.py "${overhead[@]+"${overhead[@]}"}"
run "figure 4 (1,000 concurrent streams)" bench/concurrency.py "${conc[@]+"${conc[@]}"}"
run "figure 5 (idle RSS, start-to-ready)" bench/startup.py "${startup[@]+"${startup[@]}"}"
run "figure 6 (/v1/models throughput)" bench/models_throughput.py "${models[@]+"${models[@]}"}"
run "figure 12 (1,000 sessions on a live budget of 32, fake CLI)" bench/sessions.py "${sessions[@]+"${sessions[@]}"}"
if [[ -x "$ROOT/.tools/cli/node_modules/.bin/claude" || -n "${CCGW_BENCH_CLAUDE_BIN:-}" ]]; then
  run "figure 12 (100 sessions, real CLI)" bench/sessions.py --cli real --sessions 100 "${real_sessions[@]+"${real_sessions[@]}"}"
fi
run "figure 13 (10,000 idle connections)" bench/connections.py "${conns[@]+"${conns[@]}"}"

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run_all: done with failures: ${failed[*]}" >&2
  exit 1
fi
echo "run_all: done; figures appended to bench/RESULTS.md"
