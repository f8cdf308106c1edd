#!/usr/bin/env python3
"""Figure 10: the container image's size and start time.

Builds the image from the Dockerfile (the classic builder, the host's network, and the local
base-image stand-ins of `scripts/base-images.sh` when they exist, as tests/deploy/test_image.py
does), then starts it N times with `serve --demo` (the scripted model, offline): the time from
`docker run` until `GET /health/ready` first answers 200 (polled every 10 ms), until the first
chat completion is answered, and how long `docker stop` takes. Size: `docker image inspect`
and the layers of `docker history` over 1 MB. Needs a Docker daemon.

usage: bench/image.py [--runs 7] [--image TAG]   (with --image and CCGW_BENCH_NO_BUILD=1, no build)
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

TAG = "ccgw-bench:image"
BASE_IMAGES = {
    "RUST_IMAGE": ("CCGW_RUST_IMAGE", "ccgw-base/rust:bookworm"),
    "NODE_IMAGE": ("CCGW_NODE_IMAGE", "ccgw-base/node:20-bookworm"),
}


def docker(*args, timeout=120, check=True):
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def base_args():
    args = []
    for arg, (var, stand_in) in BASE_IMAGES.items():
        image = os.environ.get(var)
        if not image and docker("image", "inspect", stand_in, check=False).returncode == 0:
            image = stand_in
        if image:
            args += ["--build-arg", f"{arg}={image}"]
    return args


def build(tag):
    cmd = ["docker", "build", "--network", "host", *base_args(), "-t", tag, b.ROOT]
    b.log("building: " + " ".join(cmd))
    subprocess.run(cmd, check=True, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    return cmd


def chat(port):
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "Hello!"}]}
    status, raw, _ = b.http_request(port, "POST", "/v1/chat/completions", body, timeout=60)
    if status != 200:
        b.die(f"chat completion failed: {status} {raw[:300]!r}")
    if not json.loads(raw)["choices"][0]["message"]["content"]:
        b.die("the chat completion is empty")


def one_run(tag):
    t0 = time.perf_counter()
    cid = docker("run", "-d", "-p", "127.0.0.1::8080", tag, "serve", "--demo").stdout.strip()
    try:
        t_run = time.perf_counter()
        port = int(docker("port", cid, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1])
        deadline = t0 + 60
        while True:
            try:
                if b.http_request(port, "GET", "/health/ready", timeout=2)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.perf_counter() > deadline:
                b.die("never ready:\n" + docker("logs", cid, check=False).stderr[-2000:])
            time.sleep(0.01)
        t_ready = time.perf_counter()
        chat(port)
        t_chat = time.perf_counter()
        docker("stop", "-t", "40", cid)
        t_stop = time.perf_counter() - t_chat
        code = docker("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip()
        if code != "0":
            b.die(f"exit code {code} after docker stop")
        return {
            "run": (t_run - t0) * 1000,
            "ready": (t_ready - t0) * 1000,
            "chat": (t_chat - t0) * 1000,
            "stop": t_stop * 1000,
        }
    finally:
        docker("rm", "-f", "-v", cid, check=False)


def layers(tag, min_bytes=1_000_000):
    out = docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", tag)
    rows = []
    for line in out.stdout.splitlines():
        size, created = line.split("\t", 1)
        if int(size) >= min_bytes:
            created = " ".join(created.replace("/bin/sh -c #(nop) ", "").split()) or "(the base image)"
            rows.append((int(size), created[:110] + ("…" if len(created) > 110 else "")))
    return rows


def mb(n):
    return f"{n / 1e6:.0f} MB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--image", default=None, help="an image already built (skips the build with CCGW_BENCH_NO_BUILD=1)")
    args = ap.parse_args()
    b.time_limit(5400 + args.runs * 120)
    tag = args.image or TAG
    details = []
    if not (args.image and os.environ.get("CCGW_BENCH_NO_BUILD") == "1"):
        cmd = build(tag)
        details.append("build: `DOCKER_BUILDKIT=0 " + " ".join(cmd[:-1]) + " .`")
    b.warn_if_busy()
    load0 = b.loadavg()
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    runs = [one_run(tag) for _ in range(args.runs)]
    ready = [r["ready"] for r in runs]
    answered = [r["chat"] for r in runs]
    stop = [r["stop"] for r in runs]
    ran = [r["run"] for r in runs]
    server = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    details += [
        f"image `{tag}`, Docker {server}; {args.runs} runs of `docker run -d -p 127.0.0.1::8080 {tag} serve --demo`, one at a time",
        f"base images: {' '.join(base_args()) or 'the Dockerfile defaults'}",
        "raw `docker run` to /health/ready 200 (ms): " + str([round(x) for x in ready]),
        "raw `docker run` to the first chat completion answered (ms): " + str([round(x) for x in answered]),
        "raw `docker stop` (ms): " + str([round(x) for x in stop]),
        "layers over 1 MB (`docker history`): "
        + "; ".join(f"{mb(s)} `{c}`" for s, c in layers(tag)),
    ]
    rows = [
        ("image size (`docker image inspect .Size`)", mb(size), "", ""),
        ("`docker run -d` returns, median", b.fmt_ms(b.median(ran)), "", ""),
        ("`docker run` to /health/ready 200, median (min / max)",
         f"{b.fmt_ms(b.median(ready))} ({b.fmt_ms(min(ready))} / {b.fmt_ms(max(ready))})", "", ""),
        ("`docker run` to the first chat completion (demo), median (min / max)",
         f"{b.fmt_ms(b.median(answered))} ({b.fmt_ms(min(answered))} / {b.fmt_ms(max(answered))})", "", ""),
        ("`docker stop` (SIGTERM, idle) to exit 0, median", b.fmt_ms(b.median(stop)), "", ""),
    ]
    b.append_results("Figure 10: the container image, size and start time", rows, details, started_load=load0)


if __name__ == "__main__":
    main()
