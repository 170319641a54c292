"""A real 2-param x 3-seed sweep for the analysis tests: lr (3 decades) x depth, a
stepped loss, a metric NaN in every run, one NaN in some cases, one infinite, and a
second version of the experiment (metalab run: real Snakemake)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from process_env import run_metalab

EXPERIMENT = textwrap.dedent(
    """
    import math
    import zlib

    import numpy as np
    import metalab

    VERSION = "1"


    @metalab.operation
    def train(params, seeds, capture):
        rng = seeds.numpy()
        lr, depth = params["lr"], params["depth"]
        loss = 2.0
        for step in range(30):
            loss = loss * (1 - lr * 3) + 0.02 * rng.random() + 0.001 * depth
            capture.metric("loss", loss, step=step)
        gain = 0.05 if VERSION == "2" else 0.0
        case = zlib.crc32(repr((lr, depth)).encode())
        own = np.random.default_rng([case, int(rng.integers(2**31))])
        noise = 0.02 * rng.normal() + 0.01 * own.normal()  # shared by seed, and per case
        capture.metric("accuracy", 0.5 + 2 * lr + 0.01 * depth + gain + noise)
        capture.metric("grad_norm", math.nan)
        diverged = lr == 0.1 and (depth == 8 or seeds.replicate_index == 0)  # 5 of 9
        capture.metric("val_loss", math.nan if diverged else loss)
        capture.metric("ratio", math.inf if lr == 0.0001 else 1.0 / lr)


    exp = metalab.Experiment(
        name="lrsweep",
        version=VERSION,
        context={},
        operation=train,
        params=metalab.grid(lr=[0.0001, 0.001, 0.01, 0.1], depth=[2, 4, 8]),
        seeds=metalab.seeds(base=3, replicates=3),
    )
    """
)


def build_analysis_store(base: Path, versions: tuple[str, ...] = ("1",)) -> Path:
    """Run the sweep (each of ``versions``) under ``base/runs``; returns the store root."""
    base.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (base / "lrsweep.py").write_text(
            EXPERIMENT.replace('VERSION = "1"', f'VERSION = "{version}"')
        )
        result = run_metalab(base, "run", "lrsweep.py", "--cores", "2")
        if not (base / "runs" / f"lrsweep+{version}" / "summary" / "runs.parquet").is_file():
            raise RuntimeError(f"analysis sweep failed:\n{result.stdout}\n{result.stderr}")
    return base / "runs"


RANDOM_SEARCH = textwrap.dedent(
    """
    import math

    import metalab


    @metalab.operation
    def train(params, seeds, capture):
        rng = seeds.numpy()
        lr, dropout = params["lr"], params["dropout"]
        # lr matters (log scale), dropout does not: only seed noise around it
        capture.metric("accuracy", 0.9 + 0.05 * math.log10(lr) + 0.01 * rng.normal())


    exp = metalab.Experiment(
        name="search",
        version="1",
        context={},
        operation=train,
        params=metalab.random(
            {"lr": metalab.loguniform(1e-4, 1e-1), "dropout": metalab.uniform(0.0, 0.5)},
            n_trials=16,
            seed=5,
        ),
        seeds=metalab.seeds(base=11, replicates=3),
    )
    """
)


def build_random_store(base: Path) -> Path:
    """A random search (16 trials x 3 seeds: lr log-uniform, dropout uniform) under
    ``base/runs``; returns the store root."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "search.py").write_text(RANDOM_SEARCH)
    result = run_metalab(base, "run", "search.py", "--cores", "2")
    if not (base / "runs" / "search+1" / "summary" / "runs.parquet").is_file():
        raise RuntimeError(f"random search failed:\n{result.stdout}\n{result.stderr}")
    return base / "runs"
