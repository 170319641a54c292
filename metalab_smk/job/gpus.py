"""The GPUs a job's runs may use, and how a run is shown only its own.

On one machine the host names the devices it hands out (``METALAB_GPUS``, with
``METALAB_RUNS_PER_GPU`` slots each); a job takes the slots its runs need with a lock file
per slot, machine-wide, so two runs never share a device beyond its slots, even across
sweeps. In a SLURM job the devices are the ones SLURM allocated. A run sees its devices
through ``CUDA_VISIBLE_DEVICES`` (and what ROCm reads), set before the experiment file is
imported.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metalab_smk.core.values import gpus_per_run
from metalab_smk.errors import ExecutorError

__all__ = [
    "DEVICES_VARIABLE",
    "PER_GPU_VARIABLE",
    "RUN_GPUS_VARIABLE",
    "GpuLease",
    "detect_devices",
    "gpu_models",
    "gpus_per_run",
    "job_devices",
    "lease_gpus",
    "show_devices",
    "slurm_devices",
    "split_devices",
    "take_gpus",
]

DEVICES_VARIABLE = "METALAB_GPUS"  # "0,1": the devices the host hands out
PER_GPU_VARIABLE = "METALAB_RUNS_PER_GPU"  # runs that may share one device (default 1)
RUN_GPUS_VARIABLE = "METALAB_RUN_GPUS"  # the devices this job's runs were given
VISIBLE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
POLL_SECONDS = 0.2


def split_devices(text: str) -> list[str]:
    """``"0, 1"`` -> ``["0", "1"]``; empty entries are dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def slurm_devices(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The GPUs SLURM allocated to this job (None outside a SLURM job or without GPUs):
    ``CUDA_VISIBLE_DEVICES`` when SLURM set it (gres with device files), else as many
    indices as ``SLURM_GPUS_ON_NODE`` or the job's gres count say."""
    if "SLURM_JOB_ID" not in environ:
        return None
    if environ.get("CUDA_VISIBLE_DEVICES"):
        return split_devices(environ["CUDA_VISIBLE_DEVICES"])
    for name in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        if environ.get(name):
            return split_devices(environ[name])
    count = environ.get("SLURM_GPUS_ON_NODE") or environ.get("METALAB_SLURM_GPUS", "")
    return [str(i) for i in range(int(count))] if count.isdigit() and int(count) else None


class GpuLease:
    """Devices a job holds: slots of a shared machine (one lock file each, held until
    ``release``), or the GPUs SLURM allocated to it; each run needs ``per_run``."""

    def __init__(self, devices: list[str], handles: list[int], per_run: int = 1) -> None:
        self.devices = devices
        self.per_run = per_run
        self._handles = handles

    def groups(self) -> list[list[str]]:
        """The devices split into one group per run that can hold them at once."""
        size = max(1, self.per_run)
        return [self.devices[i : i + size] for i in range(0, len(self.devices) - size + 1, size)]

    def release(self) -> None:
        for handle in self._handles:
            os.close(handle)
        self._handles = []


def _slot_dir() -> Path:
    directory = Path(tempfile.gettempdir(), f"metalab-gpu-slots-{os.getuid()}")
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def _try_slot(directory: Path, device: str, slot: int) -> int | None:
    """The locked handle of slot ``slot`` of ``device``, or None when another holds it."""
    handle = os.open(directory / f"{device}.{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def _try_lease(directory: Path, devices: list[str], per_gpu: int, need: int) -> GpuLease | None:
    taken: list[str] = []
    handles: list[int] = []
    for device in devices:
        for slot in range(per_gpu):
            handle = _try_slot(directory, device, slot)
            if handle is not None:
                taken.append(device)
                handles.append(handle)
                break
        if len(taken) == need:
            return GpuLease(taken, handles, need)
    GpuLease(taken, handles).release()
    return None


def lease_gpus(devices: list[str], per_gpu: int, need: int) -> GpuLease:
    """Take a slot on each of ``need`` different devices, waiting while others hold
    them (a sweep beside this one, say)."""
    directory = _slot_dir()
    waited = False
    while True:
        lease = _try_lease(directory, devices, max(1, per_gpu), need)
        if lease is not None:
            return lease
        if not waited:
            print(f"metalab worker: waiting for {need} free GPU slot(s)", file=sys.stderr)
            waited = True
        time.sleep(POLL_SECONDS)


def show_devices(devices: list[str]) -> None:
    """Let this process and its children see only ``devices``."""
    joined = ",".join(devices)
    for name in (*VISIBLE_VARIABLES, RUN_GPUS_VARIABLE):
        os.environ[name] = joined


@functools.cache
def _models() -> dict[str, str]:
    """``nvidia-smi``'s device index -> model name ({} without it)."""
    import subprocess  # only here: the job's start-up stays without it

    try:
        shown = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    pairs = (line.split(",", 1) for line in shown.splitlines() if "," in line)
    return {index.strip(): name.strip() for index, name in pairs}


def detect_devices(environ: Mapping[str, str] = os.environ) -> list[str]:
    """This machine's GPUs: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi``'s."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return split_devices(environ["CUDA_VISIBLE_DEVICES"])
    return list(_models())


def job_devices(environ: Mapping[str, str] = os.environ) -> tuple[list[str], int, bool]:
    """The devices this job may use, the runs per device, and whether SLURM allocated
    them (then they are this job's alone and need no slot locks)."""
    allocated = slurm_devices(environ)
    if allocated is not None:
        return allocated, 1, True
    if DEVICES_VARIABLE in environ:
        per_gpu = environ.get(PER_GPU_VARIABLE, "1")
        return (
            split_devices(environ[DEVICES_VARIABLE]),
            int(per_gpu) if per_gpu.isdigit() else 1,
            False,
        )
    return detect_devices(environ), 1, False


def gpu_models(devices: list[str]) -> list[str]:
    """The model names of ``devices`` that ``nvidia-smi`` knows (no call for none)."""
    if not devices:
        return []
    models = _models()
    return [models[device] for device in devices if device in models]


def take_gpus(resources: Mapping[str, Any]) -> GpuLease | None:
    """Give this job's runs the GPUs they ask for (``resources``): SLURM's, else slots of
    the host's devices; None when they ask for none. Raises ExecutorError when this machine
    has fewer GPUs than one run needs."""
    need = gpus_per_run(resources)
    if not need:
        return None
    devices, per_gpu, allocated = job_devices()
    if len(devices) < need:
        raise ExecutorError(
            f"each run asks for {need} GPU(s) but this job sees {len(devices)} "
            f"({', '.join(devices) or 'none'}); give the executor GPUs (metalab run --gpus "
            "0,1 / LocalExecutor(gpus=...) / SlurmConfig(gpus=N)) or lower resources['gpus']"
        )
    lease = GpuLease(devices, [], need) if allocated else lease_gpus(devices, per_gpu, need)
    show_devices(lease.devices)
    return lease
