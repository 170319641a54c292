"""A small real store for the dashboard and report tests: one sweep run by metalab (real
Snakemake) with successes, failures, stepped metrics, artifacts, data, logs and a param
value that is HTML."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from process_env import subprocess_env

XSS = "<script>alert(1)</script>"

EXPERIMENT = textwrap.dedent(
    """
    import struct, zlib
    import numpy as np
    import metalab


    def _png(width=160, height=90):
        raw = b"".join(b"\\x00" + bytes([200, 40 + y, 40] * width) for y in range(height))
        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


    @metalab.operation
    def train(params, seeds, capture, runtime):
        rng = seeds.numpy()
        print(f"training lr={params['lr']} label={params['label']}")
        if params["label"] == "plain" and params["lr"] == 0.01:
            raise ValueError("diverged: loss is nan")
        loss = 1.0
        for step in range(10):
            loss = loss * (1 - params["lr"] * 5) + 0.01 * rng.random()
            capture.metric("loss", loss, step=step)
        offset = 0.3 if params["label"] == "plain" else 0.0
        capture.metric("score", params["lr"] * 10 + offset + rng.normal() * 0.1)
        capture.artifact("weights", np.arange(12.0).reshape(3, 4))
        capture.artifact("curve", np.linspace(0.0, 1.0, 20) ** 2)
        capture.artifact("config", {"lr": params["lr"], "note": params["label"]})
        path = runtime.scratch_dir / "plot.png"
        path.write_bytes(_png())
        capture.file("picture", path)
        capture.data("history", {"steps": list(range(3))})


    exp = metalab.Experiment(
        name="uidemo",
        version="1",
        context={},
        operation=train,
        params=metalab.grid(lr=[0.1, 0.05, 0.01], label=["<script>alert(1)</script>", "plain"]),
        seeds=metalab.seeds(base=7, replicates=3),
    )
    """
)


def build_store(base: Path, lrs: tuple[float, ...] = (0.1, 0.05, 0.01)) -> Path:
    """Run the demo sweep under ``base/runs``; returns the store root (18 runs, 3 failed;
    other learning rates ``lrs``: 6 runs per rate, failures only at 0.01)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "uidemo.py").write_text(EXPERIMENT.replace("lr=[0.1, 0.05, 0.01]", f"lr={list(lrs)}"))
    env = subprocess_env(base)
    result = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "run", "uidemo.py", "--cores", "2"],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    root = base / "runs"
    if not (root / "uidemo+1" / "summary" / "runs.parquet").is_file():
        raise RuntimeError(f"demo sweep failed:\n{result.stdout}\n{result.stderr}")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    path: Path | list[str], port: int, *options: str, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """``metalab ui PATH... --port PORT [options]``; returns the process and its first
    output lines."""
    paths = [str(p) for p in path] if isinstance(path, list) else [str(path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "metalab_smk.cli", "ui", *paths, "--port", str(port), *options],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [process.stdout.readline().rstrip() for _ in range(3)]
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return process, lines
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"metalab ui did not start: {lines}")
