"""The Node clients of tests/node (the Anthropic TypeScript SDK's tool runner, the Vercel AI
SDK's default OpenAI model) against the session's gateway. Each `*.test.mjs` file runs under
`node --test` as one case; scripts/setup.sh installs their packages from the lockfile."""

from __future__ import annotations

import pytest

import ccgw_harness as h

NODE_DIR = h.REPO_ROOT / "tests" / "node"
TIMEOUT = 300


@pytest.mark.parametrize("script", sorted(p.name for p in NODE_DIR.glob("*.test.mjs")))
def test_node_client(gateway_url, mock_url, script):
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("the Node test clients are not installed: run scripts/setup.sh --node", pytrace=False)
    code, out, err = h.run_command(
        ["node", "--test", "--test-reporter=spec", script],
        NODE_DIR,
        h.clean_env(CCGW_URL=gateway_url, CCGW_MOCK_URL=mock_url),
        TIMEOUT,
    )
    assert code == 0, f"node --test {script} exited {code}:\n{out[-6000:]}\n{err[-3000:]}"
