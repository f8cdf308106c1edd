"""The container image: built from the Dockerfile and smoke-tested where a Docker daemon can
build it. Where none can (no daemon, or the base images cannot be fetched), the test says so
plainly and is reported as skipped, with the reason (`pytest -rs`)."""

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TAG = "ccgw-test:smoke"


def docker(*args, timeout=60, check=True):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def daemon_or_skip():
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except FileNotFoundError:
        pytest.skip("COULD NOT TEST THE IMAGE: no docker client on this machine")
    except subprocess.CalledProcessError as e:
        pytest.skip(f"COULD NOT TEST THE IMAGE: no Docker daemon reachable ({e.stderr.strip()})")


def build_or_skip():
    # The classic builder: it needs no buildx plugin, and every stage here is needed anyway.
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    out = subprocess.run(
        ["docker", "build", "-t", TAG, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
    )
    if out.returncode != 0:
        log = out.stdout + out.stderr
        # The machine cannot fetch the base images: say so, do not pass.
        if any(s in log for s in ("pull access denied", "no such host", "failed to resolve source metadata", "failed to do request", "TLS handshake timeout")):
            pytest.skip("COULD NOT TEST THE IMAGE: the Docker daemon cannot fetch the base images: " + log.strip().splitlines()[-1])
        pytest.fail("docker build failed:\n" + log[-4000:])


def http_json(url, body=None, timeout=30):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None)
    if body:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def test_the_image_builds_runs_as_non_root_serves_and_drains():
    daemon_or_skip()
    build_or_skip()
    started = time.monotonic()
    cid = docker("run", "-d", "-p", "127.0.0.1::8080", TAG, "serve", "--demo").stdout.strip()
    try:
        port = docker("port", cid, "8080/tcp").stdout.strip().rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if http_json(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("never ready:\n" + docker("logs", cid, check=False).stderr[-3000:])
        ready_after = time.monotonic() - started
        status, reply = http_json(
            f"{base}/v1/chat/completions",
            {"model": "sonnet", "messages": [{"role": "user", "content": "Hello!"}]},
        )
        assert status == 200 and reply["choices"][0]["message"]["content"]
        assert docker("exec", cid, "id", "-u").stdout.strip() == "10001"
        health = docker("inspect", "--format", "{{.State.Health.Status}}", cid).stdout.strip()
        assert health in ("starting", "healthy")
        # SIGTERM drains and exits well inside Kubernetes' grace period.
        t0 = time.monotonic()
        docker("stop", "-t", "40", cid, timeout=60)
        assert time.monotonic() - t0 < 30
        assert docker("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "0"
        size = int(docker("image", "inspect", "--format", "{{.Size}}", TAG).stdout.strip())
        print(f"image size {size / 1e6:.0f} MB, ready {ready_after:.1f} s after docker run")
    finally:
        docker("rm", "-f", cid, check=False)
