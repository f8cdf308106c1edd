#!/usr/bin/env bash
# Builds ccgw (release) and runs the gateway: scripts/run.sh [extra `ccgw serve` args]
# Without ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN it runs in --demo mode
# (a built-in mock model stands in for the real one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup.sh" --cli --console
echo "run: cargo build --release"
cargo build --release

args=("$@")
has_demo=0
for arg in "${args[@]+"${args[@]}"}"; do
  [[ "$arg" == "--demo" ]] && has_demo=1
done
if [[ $has_demo -eq 0 && -z "${ANTHROPIC_API_KEY:-}" && -z "${ANTHROPIC_AUTH_TOKEN:-}" && -z "${CLAUDE_CODE_OAUTH_TOKEN:-}" ]]; then
  echo "run: none of ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN is set: starting in --demo mode (mock model)"
  args=(--demo "${args[@]+"${args[@]}"}")
fi
echo "run: target/release/ccgw serve ${args[*]+"${args[*]}"}"
exec "$ROOT/target/release/ccgw" serve "${args[@]+"${args[@]}"}"
