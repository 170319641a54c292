"""The GPU device check: PyTorch sweeps on a real GPU, and what each run saw.

Three experiment files that differ only in their top level (issue 19's table), 16 runs of
a small matmul "training" each, then a sweep whose runs ask for one GPU each over every
slot (``gpus="auto"``, two runs per device when there is only one):

    python benchmarks/gpu.py [--runs 16]

Baseline: before this release, the second and third top levels failed every run
(``Cannot re-initialize CUDA in forked subprocess``). Needs PyTorch with CUDA; without
one it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TOP_LEVELS = {
    "import torch; CUDA inside the operation": "",
    "DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')": (
        "DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')"
    ),
    "W0 = torch.zeros(8, device='cuda')": "W0 = torch.zeros(8, device='cuda')",
}

EXPERIMENT = textwrap.dedent(
    """
    import os, time
    import metalab
    import torch
    __TOP__

    @metalab.operation
    def train(params, seeds, capture):
        torch.manual_seed(seeds.derive("torch") % 2**63)
        w = torch.randn(1024, 1024, device="cuda")
        for _ in range(50):
            w = torch.tanh(w @ w / 1024)
        torch.cuda.synchronize()
        capture.metric("value", float(w.mean()))
        capture.metric("visible", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        capture.metric("gpu", torch.cuda.get_device_name(0))
        capture.metric("start", params["x"] * 0 + time.time())

    exp = metalab.Experiment(name="gpu", version="1", context={}, operation=train,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(1, 1),
        resources=__RESOURCES__)

    if __name__ == "__main__":
        start = time.perf_counter()
        results = metalab.run(exp, store="store", verbose=False,
            executor=metalab.LocalExecutor(gpus="auto", runs_per_gpu=__PER_GPU__)).result()
        frame = results.to_dataframe()
        print(json.dumps({"ok": int((frame["status"] == "success").sum()),
            "seconds": time.perf_counter() - start,
            "seen": sorted({(r["visible"], r["gpu"]) for _, r in frame.iterrows()
                            if r["status"] == "success"})}))
    """
).replace("import os, time", "import json, os, time")


def _sweep(top: str, n: int, resources: dict, per_gpu: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exp.py"
        text = EXPERIMENT.replace("__TOP__", top).replace("__N__", str(n))
        path.write_text(
            text.replace("__RESOURCES__", repr(resources)).replace("__PER_GPU__", str(per_gpu))
        )
        done = subprocess.run(
            [sys.executable, str(path)], cwd=directory, capture_output=True, text=True
        )
        if done.returncode != 0:
            return {"ok": 0, "error": done.stderr.strip().splitlines()[-1:]}
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=16)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("benchmarks/gpu.py needs PyTorch (pip install torch)")
        return 2
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU; none is visible here")
        return 2
    count = torch.cuda.device_count()
    print(f"{count} GPU(s): {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print("baseline (release before): top levels 2 and 3 gave 0/16 runs ok")
    for label, top in TOP_LEVELS.items():
        started = time.perf_counter()
        outcome = _sweep(top, args.runs, {}, 1)
        print(f"{outcome['ok']:>3}/{args.runs} ok  {time.perf_counter() - started:5.1f} s  {label}")
        print(f"          runs saw: {outcome.get('seen') or outcome.get('error')}")
    per_gpu = 2 if count == 1 else 1
    outcome = _sweep(
        TOP_LEVELS["W0 = torch.zeros(8, device='cuda')"], args.runs, {"gpus": 1}, per_gpu
    )
    print(
        f"{outcome['ok']:>3}/{args.runs} ok  slots: resources={{'gpus': 1}}, gpus=auto, "
        f"runs_per_gpu={per_gpu}; runs saw: {outcome.get('seen') or outcome.get('error')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
