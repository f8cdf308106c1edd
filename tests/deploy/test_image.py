"""The container image: built from the Dockerfile and smoke-tested where a Docker daemon can
build it. Where none can (no daemon, or the base images cannot be fetched), the test says so
plainly and is reported as skipped, with the reason (`pytest -rs`).

The base images are the Dockerfile's defaults (Docker Hub) unless CCGW_RUST_IMAGE /
CCGW_NODE_IMAGE name others, or the local stand-ins `scripts/base-images.sh` makes exist (see
docs/deploy.md, "Building without Docker Hub")."""

import json
import os
import pathlib
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TAG = "ccgw-test:smoke"
# Build argument -> (environment variable, the tag scripts/base-images.sh gives its stand-in).
BASE_IMAGES = {
    "RUST_IMAGE": ("CCGW_RUST_IMAGE", "ccgw-base/rust:bookworm"),
    "NODE_IMAGE": ("CCGW_NODE_IMAGE", "ccgw-base/node:20-bookworm"),
}
# The image's HEALTHCHECK runs every 15 s; two rounds are enough to see it turn healthy.
HEALTHY_WITHIN_SECS = 60


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


def base_image_args():
    """`--build-arg` pairs for the base images named in the environment, or else for the local
    stand-ins when they exist; none (the Dockerfile's defaults) otherwise."""
    args = []
    for arg, (var, stand_in) in BASE_IMAGES.items():
        image = os.environ.get(var)
        if not image and docker("image", "inspect", stand_in, check=False).returncode == 0:
            image = stand_in
        if image:
            args += ["--build-arg", f"{arg}={image}"]
    return args


def build_or_skip():
    # The classic builder: it needs no buildx plugin, and every stage here is needed anyway.
    # The host's network: the build's apt, npm and cargo steps then work where the daemon runs
    # without its own NAT (`dockerd --iptables=false`), and as well where it does.
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    out = subprocess.run(
        ["docker", "build", "--network", "host", *base_image_args(), "-t", TAG, str(ROOT)],
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


def wait_healthy(cid):
    deadline = time.monotonic() + HEALTHY_WITHIN_SECS
    while time.monotonic() < deadline:
        health = docker("inspect", "--format", "{{.State.Health.Status}}", cid).stdout.strip()
        if health == "healthy":
            return
        assert health == "starting", f"the health check says {health}"
        time.sleep(1)
    pytest.fail(f"not healthy after {HEALTHY_WITHIN_SECS} s")


def test_the_image_builds_runs_as_non_root_serves_and_drains():
    daemon_or_skip()
    build_or_skip()
    started = time.monotonic()
    cid = docker("run", "-d", "-p", "127.0.0.1::8080", TAG, "serve", "--demo").stdout.strip()
    try:
        port = docker("port", cid, "8080/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if http_json(f"{base}/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("never ready:\n" + docker("logs", cid, check=False).stderr[-3000:])
        ready_after = time.monotonic() - started
        status, reply = http_json(
            f"{base}/v1/chat/completions",
            {"model": "sonnet", "messages": [{"role": "user", "content": "Hello!"}]},
        )
        assert status == 200 and reply["choices"][0]["message"]["content"]
        answered_after = time.monotonic() - started
        # Every process in the container (tini, the gateway, its CLIs) runs as the image's user.
        assert docker("exec", cid, "id", "-u").stdout.strip() == "10001"
        top = docker("top", cid, "-o", "pid,uid,comm").stdout.splitlines()[1:]
        uids = {line.split()[1] for line in top}
        assert uids == {"10001"}, top
        assert any(line.split()[2] == "ccgw" for line in top), top
        wait_healthy(cid)
        # SIGTERM drains and exits well inside Kubernetes' grace period.
        t0 = time.monotonic()
        docker("stop", "-t", "40", cid, timeout=60)
        stopped_in = time.monotonic() - t0
        assert stopped_in < 30
        state = docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", cid)
        assert state.stdout.strip() == "0 false", docker("logs", cid, check=False).stderr[-3000:]
        size = int(docker("image", "inspect", "--format", "{{.Size}}", TAG).stdout.strip())
        print(
            f"image size {size / 1e6:.0f} MB; after docker run: ready {ready_after:.1f} s, "
            f"first chat completion {answered_after:.1f} s; docker stop took {stopped_in:.1f} s"
        )
    finally:
        docker("rm", "-f", "-v", cid, check=False)
