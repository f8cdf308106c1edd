#!/usr/bin/env bash
# Full test run: setup, debug build, Rust tests (unit + end-to-end), Python client suite, the
# web console in headless Chromium.
# Stops at the first failing stage and names it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS_DIR="${CCGW_TOOLS_DIR:-$ROOT/.tools}"
VENV_PY="$TOOLS_DIR/venv/bin/python"
if [[ -n "${CCGW_TOOLS_DIR:-}" && -z "${CCGW_CLAUDE_BIN:-}" ]]; then
  export CCGW_CLAUDE_BIN="$TOOLS_DIR/cli/node_modules/.bin/claude"
fi

START=$SECONDS
done_stages=()

stage() {
  local name="$1"
  shift
  local t0=$SECONDS
  echo "test: ==> $name: $*"
  local rc=0
  "$@" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "test: FAILED at stage '$name' (exit code $rc) after $((SECONDS - START))s; passed before it: ${done_stages[*]:-none}" >&2
    exit "$rc"
  fi
  echo "test: <== $name ok ($((SECONDS - t0))s)"
  done_stages+=("$name")
}

stage "setup" "$ROOT/scripts/setup.sh" --all
stage "cargo build" cargo build
stage "cargo test" cargo test
stage "python tests" "$VENV_PY" -m pytest tests/python -q
# The Kubernetes manifests, and the container image where a Docker daemon can build it (-rs
# prints plainly why the image test was skipped when it could not run).
stage "deploy checks" "$VENV_PY" -m pytest tests/deploy -q -rs
stage "console tests" npm --prefix "$ROOT/web" test

echo "test: all stages passed (${done_stages[*]}) in $((SECONDS - START))s"
