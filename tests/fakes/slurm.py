"""A fake SLURM on PATH: ``sbatch``, ``squeue``, ``sacct``, ``scancel`` and ``scontrol``.

``install(bin_dir, state_dir)`` writes the five commands into ``bin_dir``; each runs this
file. They answer in SLURM's own formats (those recorded in tests/slurm/test_slurm_parsers.py),
from files in ``state_dir``:

* ``calls.jsonl``: every call, ``{"command": "sbatch", "argv": [...]}`` per line;
* ``scenario.json`` (written by a test): ``{"refuse": "message"}`` makes sbatch fail;
  ``{"end": {"<task>": {"state": "TIMEOUT" | "OUT_OF_MEMORY", "when": GLOB}}}`` ends that
  task of the next job array as SLURM would (a time limit: SIGTERM, then SIGKILL after
  ``KILL_WAIT``; memory: SIGKILL), with SLURM's log line, once a file matches ``GLOB``
  (once per task: the same task of a later array runs normally);
* ``jobs/<id>.json``: one job or array, its tasks' IDs and states.

A submitted job starts at once (after its ``afterany`` dependencies): a supervisor
process runs each task's ``--wrap`` command with bash, in ``--chdir``, with the SLURM_*
variables, into the log of ``--output``, at most ``%N`` tasks at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "scontrol")
ALIVE = ("PENDING", "RUNNING")
KILL_WAIT = 10.0  # SLURM's KillWait: seconds between SIGTERM and SIGKILL
POLL = 0.05
NODE = "fake-node"


def install(bin_dir: Path, state: Path) -> None:
    """Write the fake commands into ``bin_dir``, keeping their state in ``state``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (state / "jobs").mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(
            f"#!/bin/sh\nFAKE_SLURM_STATE='{state}' exec '{sys.executable}' "
            f"'{Path(__file__).resolve()}' {name} \"$@\"\n"
        )
        path.chmod(0o755)


def calls(state: Path, command: str | None = None) -> list[list[str]]:
    """The argv of every call so far (of ``command`` only, when given)."""
    path = state / "calls.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    found = [json.loads(line) for line in lines]
    return [c["argv"] for c in found if command is None or c["command"] == command]


def jobs(state: Path) -> dict[str, dict[str, Any]]:
    """Every job submitted so far, by job ID."""
    return {p.stem: _read(p) for p in (state / "jobs").glob("*.json")}


# -- state -----------------------------------------------------------------------------


def _read(path: Path) -> Any:
    for _ in range(50):  # a writer renames a complete file into place: retry a vanishing one
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(path.read_text())
        time.sleep(0.01)
    return json.loads(path.read_text())


def _write(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def _next_ids(state: Path, count: int) -> int:
    """Reserve ``count`` consecutive job IDs; the first."""
    with open(state / "next_id", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        first = int(handle.read().strip() or 1000)
        handle.seek(0)
        handle.truncate()
        handle.write(str(first + count))
    return first


def _scenario(state: Path) -> dict[str, Any]:
    path = state / "scenario.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _tasks(state: Path, ids: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(job, task) of every task named by ``ids`` (an array's ID, a raw ID or ``A_i``)."""
    wanted = set(ids)
    found = []
    for job in jobs(state).values():
        for task in job["tasks"]:
            if wanted & {job["id"], task["raw"], task["shown"]} or not wanted:
                found.append((job, task))
    return found


# -- the commands ------------------------------------------------------------------------


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def sbatch(state: Path, argv: list[str]) -> int:
    if refusal := _scenario(state).get("refuse"):
        print(f"sbatch: error: {refusal}", file=sys.stderr)
        return 1
    array = _option(argv, "--array")
    throttle = None
    count = 1
    if array is not None:
        span, _, limit = array.partition("%")
        first, _, last = span.partition("-")
        count = int(last or first) - int(first) + 1
        throttle = int(limit) if limit else None
    job_id = _next_ids(state, count)
    dependency = _option(argv, "--dependency") or ""
    tasks = [
        {
            "index": i,
            "raw": str(job_id + i),
            "shown": f"{job_id}_{i}" if array is not None else str(job_id),
            "state": "PENDING",
            "pid": None,
        }
        for i in range(count)
    ]
    job = {
        "id": str(job_id),
        "name": _option(argv, "--job-name") or "wrap",
        "array": array is not None,
        "throttle": throttle,
        "after": dependency.split(":", 1)[1].split(":") if ":" in dependency else [],
        "chdir": _option(argv, "--chdir") or os.getcwd(),
        "output": _option(argv, "--output") or "slurm-%j.out",
        "wrap": _option(argv, "--wrap") or "true",
        "time": _option(argv, "--time"),
        "tasks": tasks,
    }
    _write(state / "jobs" / f"{job_id}.json", job)
    subprocess.Popen(
        [sys.executable, __file__, "_supervise", str(job_id)],
        env={**os.environ, "FAKE_SLURM_STATE": str(state)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(state / f"supervisor-{job_id}.log", "w"),  # noqa: SIM115
        start_new_session=True,
    )
    print(job_id)
    return 0


def squeue(state: Path, argv: list[str]) -> int:
    ids = (_option(argv, "-j") or "").split(",") if _option(argv, "-j") else []
    found = _tasks(state, ids)
    if ids and not found:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    form = _option(argv, "-o") or "%i|%T"
    for _, task in found:
        if task["state"] in ALIVE:
            fields = {"%A": task["raw"], "%i": task["shown"], "%T": task["state"]}
            line = form
            for key, value in fields.items():
                line = line.replace(key, value)
            print(line)
    return 0


def sacct(state: Path, argv: list[str]) -> int:
    ids = (_option(argv, "-j") or "").split(",")
    fields = (_option(argv, "-o") or "JobIDRaw,JobID,State").split(",")
    for job, task in _tasks(state, [i for i in ids if i]):
        values = {
            "JobIDRaw": task["raw"],
            "JobID": task["shown"],
            "State": task["state"],
            "JobName": job["name"],
            "Timelimit": job["time"] or "",
        }
        print("|".join(values.get(name, "") for name in fields))
    return 0


def scancel(state: Path, argv: list[str]) -> int:
    sig = next((a.split("=", 1)[1] for a in argv if a.startswith("--signal=")), "TERM")
    ids = [a for a in argv if not a.startswith("-")]
    for job_id in {job["id"] for job, _ in _tasks(state, ids)} if ids else ():
        (state / "jobs" / f"{job_id}.cancel").write_text(sig)
    return 0


def scontrol(state: Path, argv: list[str]) -> int:
    found = _tasks(state, argv[-1:])
    if argv[:2] != ["show", "job"] or not found:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    job, task = found[0]
    print(
        f"JobId={task['raw']} JobName={job['name']} JobState={task['state']} "
        f"NodeList={NODE} WorkDir={job['chdir']} StdOut={_log_path(job, task)}"
    )
    return 0


# -- running a job -----------------------------------------------------------------------


def _log_path(job: dict[str, Any], task: dict[str, Any]) -> str:
    path = job["output"]
    for key, value in (("%A", job["id"]), ("%a", str(task["index"])), ("%j", task["raw"])):
        path = path.replace(key, value)
    return os.path.join(job["chdir"], path)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (what SLURM's cgroup of a job holds)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(stat).read_text()
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _kill(pid: int, signum: int) -> None:
    for each in _descendants(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, signum)


class _Supervisor:
    """Runs the tasks of one job and keeps its ``jobs/<id>.json`` up to date."""

    def __init__(self, state: Path, job_id: str) -> None:
        self.state, self.path = state, state / "jobs" / f"{job_id}.json"
        self.job = _read(self.path)
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        ends = _scenario(state).get("end", {}) if self.job["array"] else {}
        self.ends: dict[int, dict[str, str]] = {
            int(k): v for k, v in ends.items() if not (state / f"ended-{k}").exists()
        }  # each end happens once: a task of a later array runs normally

    def save(self) -> None:
        _write(self.path, self.job)

    def cancel_request(self) -> str | None:
        path = self.state / "jobs" / f"{self.job['id']}.cancel"
        return path.read_text().strip() if path.is_file() else None

    def run(self) -> None:
        while not self._dependencies_done():
            if self.cancel_request():
                return self._cancel("TERM")
            time.sleep(POLL)
        pending = list(self.job["tasks"])
        while pending or self.running:
            if signal_name := self.cancel_request():
                return self._cancel(signal_name)
            limit = self.job["throttle"] or len(self.job["tasks"])
            while pending and len(self.running) < limit:
                self._start(pending.pop(0))
            for index, process in list(self.running.items()):
                task = self.job["tasks"][index]
                end = self.ends.get(index)
                if end and glob.glob(end["when"]):
                    self._end(task, process, end["state"])
                elif process.poll() is not None:
                    self._finish(task, "COMPLETED" if process.returncode == 0 else "FAILED")
            time.sleep(POLL)

    def _dependencies_done(self) -> bool:
        others = jobs(self.state)
        return all(
            t["state"] not in ALIVE for job in self.job["after"] for t in others[job]["tasks"]
        )

    def _start(self, task: dict[str, Any]) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FAKE_"))},
            "SLURM_JOB_ID": task["raw"],
            "SLURM_JOB_NAME": self.job["name"],
            "SLURMD_NODENAME": NODE,
        }
        if self.job["array"]:
            env["SLURM_ARRAY_JOB_ID"] = self.job["id"]
            env["SLURM_ARRAY_TASK_ID"] = str(task["index"])
        log = open(_log_path(self.job, task), "ab")  # noqa: SIM115
        self.running[task["index"]] = subprocess.Popen(
            ["bash", "-c", self.job["wrap"]],
            cwd=self.job["chdir"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        task.update(state="RUNNING", pid=self.running[task["index"]].pid)
        self.save()

    def _finish(self, task: dict[str, Any], state: str) -> None:
        self.running.pop(task["index"], None)
        task["state"] = state
        self.save()

    def _log_line(self, task: dict[str, Any], line: str) -> None:
        with open(_log_path(self.job, task), "a") as log:
            log.write(f"slurmstepd: error: {line}\n")

    def _end(self, task: dict[str, Any], process: subprocess.Popen[bytes], state: str) -> None:
        """End ``task`` as SLURM ends a job at its time limit or memory limit."""
        if state == "OUT_OF_MEMORY":
            _kill(process.pid, signal.SIGKILL)
            self._log_line(
                task,
                f"Detected 1 oom-kill event(s) in StepId={task['raw']}.batch. Some of your "
                "processes may have been killed by the cgroup out-of-memory handler.",
            )
        else:
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            self._log_line(task, f"*** JOB {task['raw']} ON {NODE} CANCELLED AT {now} "
                           "DUE TO TIME LIMIT ***")  # fmt: skip
            self._stop(process, signal.SIGTERM)
        process.wait()
        (self.state / f"ended-{task['index']}").touch()
        self._finish(task, state)

    def _stop(self, process: subprocess.Popen[bytes], signum: int) -> None:
        """``signum`` to every process of the task, SIGKILL to those left after KILL_WAIT."""
        _kill(process.pid, signum)
        deadline = time.monotonic() + KILL_WAIT
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL)
        _kill(process.pid, signal.SIGKILL)

    def _cancel(self, signal_name: str) -> None:
        signum = getattr(signal, f"SIG{signal_name}", signal.SIGTERM)
        for index, process in list(self.running.items()):
            self._stop(process, signum)
            process.wait()
            self.running.pop(index)
        for task in self.job["tasks"]:
            if task["state"] in ALIVE:
                task["state"] = "CANCELLED by 0"
        self.save()


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_SLURM_STATE"])
    command, args = argv[0], argv[1:]
    if command == "_supervise":
        _Supervisor(state, args[0]).run()
        return 0
    with open(state / "calls.jsonl", "a") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.write(json.dumps({"command": command, "argv": [command, *args]}) + "\n")
    handlers = {"sbatch": sbatch, "squeue": squeue, "sacct": sacct, "scancel": scancel}
    handlers["scontrol"] = scontrol
    return handlers[command](state, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
