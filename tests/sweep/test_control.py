"""A sweep the user controls (issue 9): Ctrl-C, kill -9, `metalab stop`, one sweep at a
time, crash isolation, honest exit codes, and experiments that are not plain modules.
Every test drives real metalab, Snakemake and worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_helpers import file_hashes, settled_hashes

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "metalab_smk.cli"]

SWEEP = textwrap.dedent(
    """
    import os, sys, time
    import metalab

    @metalab.operation
    def op(params, capture):
        time.sleep(__SLEEP__)
        capture.metric("y", params["x"] * 2)

    exp = metalab.Experiment(name="ctl", version="1", context={}, operation=op,
        params=metalab.grid(x=list(range(__N__))), seeds=metalab.seeds(0, 1))

    if __name__ == "__main__":
        metalab.run(exp, store="store",
                    executor=metalab.LocalExecutor(cores=2, chunk_size=__CHUNK__)).result()
    """
)


def _write(tmp_path: Path, n: int = 16, sleep: float = 0.5, chunk: int = 4) -> Path:
    text = SWEEP.replace("__N__", str(n)).replace("__SLEEP__", str(sleep))
    (tmp_path / "exp.py").write_text(text.replace("__CHUNK__", str(chunk)))
    return tmp_path / "store" / "ctl+1"


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _records(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.glob("*.json")}


def _start(tmp_path: Path, *command: str) -> subprocess.Popen[str]:
    """Start ``command`` as its own process group with default SIGINT handling, as a
    terminal's foreground job (a non-interactive shell's background jobs ignore SIGINT)."""
    return subprocess.Popen(
        list(command),
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _sweep_processes(exp_dir: Path) -> list[int]:
    from metalab_smk.sweep.locks import live_snakemake_pids, live_worker_pids

    return [*live_snakemake_pids(exp_dir), *live_worker_pids(exp_dir)]


def _status(exp_dir: Path) -> str:
    return subprocess.run(
        [*CLI, "status", str(exp_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def _in_function_sweep(tmp_path: Path, name: str, op, xs: list[int], **run_options):
    """Define (inside this function) and start an experiment of ``op`` over ``x`` in xs."""
    import metalab

    exp = metalab.Experiment(
        name=name,
        version="1",
        context={},
        operation=op,
        params=metalab.grid(x=xs),
        seeds=metalab.seeds(0, 1),
    )
    options = {"verbose": False, "executor": metalab.LocalExecutor(cores=1), **run_options}
    return metalab.run(exp, store=tmp_path / "store", **options)


def _wait_until_done_at_least(exp_dir: Path, count: int) -> None:
    _wait_for(lambda: len(_records(exp_dir / "runs")) >= count)


def _rerun_finishes_without_recomputing(tmp_path: Path, exp_dir: Path) -> None:
    finished = _records(exp_dir / "runs")
    again = subprocess.run(
        [sys.executable, "exp.py"], cwd=tmp_path, capture_output=True, text=True, timeout=180
    )
    assert again.returncode == 0, again.stderr
    after = _records(exp_dir / "runs")
    assert len(after) == 16
    assert {name: after[name] for name in finished} == finished  # nothing ran twice
    assert not list((exp_dir / "logs").glob("*.partial"))


@pytest.mark.parametrize("command", ["script", "cli"])
def test_ctrl_c_stops_the_sweep_and_its_jobs_and_the_rerun_resumes(
    tmp_path: Path, command: str
) -> None:
    exp_dir = _write(tmp_path, sleep=1.0)
    argv = (
        [sys.executable, "exp.py"]
        if command == "script"
        else [*CLI, "run", "exp.py", "--store", "store", "--cores", "2", "--chunk-size", "4"]
    )
    process = _start(tmp_path, *argv)
    _wait_for(lambda: (exp_dir / "runs").is_dir() and len(_records(exp_dir / "runs")) >= 2)
    _wait_for(lambda: any((exp_dir / "logs").glob("*.partial")))
    interrupted = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert time.monotonic() - interrupted < 15
    assert process.returncode == 130, err
    assert "Traceback" not in err
    done = len(_records(exp_dir / "runs"))
    assert f"interrupted: {done} of 16 runs finished and are kept" in err
    assert "run the same command again" in err
    assert _sweep_processes(exp_dir) == []
    cancelled = [json.loads(p.read_text()) for p in (exp_dir / "failed").glob("*.json")]
    assert cancelled and {r["status"] for r in cancelled} == {"cancelled"}
    _rerun_finishes_without_recomputing(tmp_path, exp_dir)


def test_second_ctrl_c_kills_at_once(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(
        SWEEP.replace("__N__", "4")
        .replace("__CHUNK__", "1")
        .replace(
            "time.sleep(__SLEEP__)",
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    time.sleep(120)",
        )
        .replace("import os, sys, time", "import os, signal, sys, time")
    )
    exp_dir = tmp_path / "store" / "ctl+1"
    process = _start(tmp_path, sys.executable, "exp.py")
    _wait_for(lambda: len(list(exp_dir.glob("logs/*.partial"))) >= 2)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(1.0)
    assert process.poll() is None  # waits for the runs that ignore SIGTERM
    second = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert time.monotonic() - second < 8
    assert process.returncode == 130, err
    assert _sweep_processes(exp_dir) == []


@pytest.mark.parametrize("victim", ["metalab", "snakemake"])
def test_sigkill_leaves_no_orphan_and_the_rerun_runs_nothing_twice(
    tmp_path: Path, victim: str
) -> None:
    exp_dir = _write(tmp_path)
    process = _start(tmp_path, sys.executable, "exp.py")
    _wait_for(lambda: (exp_dir / "runs").is_dir() and len(_records(exp_dir / "runs")) >= 2)
    killed = time.monotonic()
    if victim == "metalab":
        os.kill(process.pid, signal.SIGKILL)
    else:
        from metalab_smk.sweep.locks import live_snakemake_pids

        for pid in live_snakemake_pids(exp_dir):
            os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: _sweep_processes(exp_dir) == [], 15)
    assert time.monotonic() - killed < 10
    process.communicate(timeout=60)
    if victim == "snakemake":
        assert process.returncode == 1  # the runner reports the killed Snakemake
    _rerun_finishes_without_recomputing(tmp_path, exp_dir)


def test_metalab_stop_ends_a_background_sweep_and_leaves_it_resumable(tmp_path: Path) -> None:
    exp_dir = _write(tmp_path, sleep=1.0)
    submitted = subprocess.run(
        [*CLI, "submit", "exp.py", "--store", "store", "--cores", "2", "--chunk-size", "4"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    _wait_until_done_at_least(exp_dir, 2)
    stopped = subprocess.run(
        [*CLI, "stop", str(exp_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped head process" in stopped.stdout
    assert _sweep_processes(exp_dir) == []
    status = _status(exp_dir)
    assert "submitted head process: stopped" in status
    _rerun_finishes_without_recomputing(tmp_path, exp_dir)


def test_handle_cancel_and_reconnect_cancel(tmp_path: Path) -> None:
    import metalab

    exp_dir = _write(tmp_path, sleep=1.0)
    code = textwrap.dedent(
        """
        import sys, time, metalab
        sys.path.insert(0, ".")
        from exp import exp
        handle = metalab.run(exp, store="store", wait=False,
                             executor=metalab.LocalExecutor(cores=2, chunk_size=4))
        print("submitted", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    _wait_until_done_at_least(exp_dir, 1)
    handle = metalab.reconnect(exp_dir)
    handle.cancel()
    assert handle.is_complete
    assert _sweep_processes(exp_dir) == []
    assert len(_records(exp_dir / "runs")) < 16


def test_second_run_is_refused_before_writing_anything(tmp_path: Path) -> None:
    exp_dir = _write(tmp_path, sleep=1.0)
    first = _start(tmp_path, sys.executable, "exp.py")
    try:
        _wait_for(
            lambda: (
                any((exp_dir / "logs").glob("*.partial")) if (exp_dir / "logs").is_dir() else False
            )
        )
        snapshot = exp_dir / ".metalab" / "snapshot" / "exp.py"
        before = snapshot.read_bytes()
        (tmp_path / "exp.py").write_text((tmp_path / "exp.py").read_text().replace('"y"', '"z"'))
        second = subprocess.run(
            [sys.executable, "-m", "metalab_smk.cli", "run", "exp.py", "--store", "store"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another metalab run is active in store/ctl+1 (pid {first.pid})" in second.stderr
        assert "metalab stop" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert snapshot.read_bytes() == before  # no recompile under a live sweep
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=60)


CRASHES = textwrap.dedent(
    """
    import ctypes, os, time
    import metalab

    @metalab.operation
    def op(params, capture):
        if params["x"] == 1:
            ctypes.string_at(0)
        if params["x"] == 3:
            os._exit(3)
        if params["x"] == 5:
            os.abort()
        capture.metric("y", params["x"])

    exp = metalab.Experiment(name="crash", version="1", context={}, operation=op,
        params=metalab.grid(x=list(range(8))), seeds=metalab.seeds(0, 1))
    """
)


def test_a_crashing_run_fails_only_itself_in_the_same_invocation(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(CRASHES)
    done = subprocess.run(
        [*CLI, "run", "exp.py", "--store", "store", "--cores", "1", "--chunk-size", "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    exp_dir = tmp_path / "store" / "crash+1"
    assert done.returncode == 1
    assert len(_records(exp_dir / "runs")) == 5  # the runs after each crash ran too
    failed = {
        r["params_resolved"]["x"]: r["error"]["message"]
        for r in (json.loads(p.read_text()) for p in (exp_dir / "failed").glob("*.json"))
    }
    assert "killed by signal SIGSEGV" in failed[1]
    assert "exited with code 3" in failed[3]
    assert "killed by signal SIGABRT" in failed[5]
    assert "metalab run: error: 5 of 8 runs done, 3 failed, 0 missing" in done.stderr
    status = _status(exp_dir)
    assert "the run's process was killed by signal SIGSEGV" in status
    assert "the run's process exited with code 3" in status
    assert "0 pending" in status


def test_result_raises_when_snakemake_fails(tmp_path: Path) -> None:
    import metalab
    from metalab_smk.errors import SweepError
    from metalab_smk.sweep.executors import ProfileExecutor

    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("executor: no-such-plugin\njobs: 1\n")

    @metalab.operation
    def op(params):
        return {"y": params["x"]}

    handle = _in_function_sweep(
        tmp_path, "smkfail", op, [1, 2], executor=ProfileExecutor(str(profile))
    )
    with pytest.raises(SweepError) as error:
        handle.result()
    message = str(error.value)
    assert message.startswith("snakemake failed (exit ")
    assert "no-such-plugin" in message
    assert "log: " in message and "snakemake.log" in message
    assert error.value.status.done == 0


def test_result_with_failed_runs_returns_them_and_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Upstream's semantics: the Results hold the failed runs; one warning line names
    them and `metalab status`; ``check=True`` raises instead."""
    import metalab

    @metalab.operation
    def op(params):
        if params["x"] >= 2:
            raise ValueError(f"bad x {params['x']}")
        return {"y": params["x"]}

    handle = _in_function_sweep(tmp_path, "onefails", op, [1, 2, 3])
    capsys.readouterr()
    results = handle.result()
    assert len(results) == 3 and len(results.successful) == 1 and len(results.failed) == 2
    assert results.failed[0].error["type"] == "ValueError"
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("metalab: warning: 2 of 3 runs failed (2 x ValueError: bad x ")
    assert "details: `metalab status " in line and line.endswith("onefails+1`"), line
    assert len(handle.result()) == 3 and capsys.readouterr().err == ""  # warned once
    with pytest.raises(metalab.SweepError, match=r"1 of 3 runs done, 2 failed.*ValueError"):
        handle.result(check=True)


def test_experiment_defined_in_a_function_reaches_jobs_by_value(tmp_path: Path) -> None:
    import metalab

    offset = 100  # a closure variable

    @metalab.operation
    def op(params, capture):
        capture.metric("y", params["x"] + offset)

    results = _in_function_sweep(tmp_path, "infunc", op, [1, 2, 3]).result()
    assert sorted(r.metrics["y"] for r in results.successful) == [101, 102, 103]
    assert (tmp_path / "store" / "infunc+1" / ".metalab" / "experiment.pkl").is_file()


def test_unshippable_experiment_is_refused_before_any_job(tmp_path: Path) -> None:
    import threading

    import metalab
    from metalab_smk.errors import ShippingError

    lock = threading.Lock()

    @metalab.operation
    def op(params):
        with lock:
            return {"y": params["x"]}

    with pytest.raises(ShippingError, match=r"defined inside a function.*cannot be pickled"):
        _in_function_sweep(tmp_path, "nopickle", op, [1])
    assert not (tmp_path / "store" / "nopickle+1" / "Snakefile").exists()


def test_file_reading_argv_and_main_block_experiment_run(tmp_path: Path) -> None:
    (tmp_path / "exp.py").write_text(
        textwrap.dedent(
            """
            import sys
            import metalab

            scale = int(sys.argv[1])

            @metalab.operation
            def op(params, capture):
                capture.metric("y", params["x"] * scale)

            if __name__ == "__main__":
                exp = metalab.Experiment(name="argv", version=str(scale), context={},
                    operation=op, params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(0, 1))
                results = metalab.run(exp, store="store", verbose=False,
                                      executor=metalab.LocalExecutor(cores=1)).result()
                print(sorted(r.metrics["y"] for r in results.successful))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "exp.py", "5"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[5, 10, 15]"


def test_experiment_from_stdin_without_a_file_runs_by_value(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import metalab

        @metalab.operation
        def op(params, capture):
            capture.metric("y", params["x"] * 3)

        exp = metalab.Experiment(name="stdin", version="1", context={}, operation=op,
            params=metalab.grid(x=[1, 2]), seeds=metalab.seeds(0, 1))
        results = metalab.run(exp, store="store", verbose=False,
                              executor=metalab.LocalExecutor(cores=1)).result()
        print(sorted(r.metrics["y"] for r in results.successful))
        """
    )
    done = subprocess.run(
        [sys.executable, "-"],
        input=script,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[3, 6]"
    compiled = json.loads(
        (tmp_path / "store" / "stdin+1" / ".metalab" / "compiled.json").read_text()
    )
    assert compiled["source"]["by_value"].startswith("not defined in a Python file")


def test_worker_failing_to_import_the_file_fails_the_sweep_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metalab
    from metalab_smk.errors import SweepError
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.runner import start

    (tmp_path / "exp.py").write_text(
        textwrap.dedent(
            """
            import os
            import metalab

            if os.environ.get("METALAB_TEST_BREAK_JOBS"):
                raise RuntimeError("broken in jobs")

            @metalab.operation
            def op(params):
                return {"y": params["x"]}

            exp = metalab.Experiment(name="broken", version="1", context={}, operation=op,
                params=metalab.grid(x=[1, 2]), seeds=metalab.seeds(0, 1))
            """
        )
    )
    compiled = subprocess.run(
        [sys.executable, "-m", "metalab_smk.cli", "compile", "exp.py", "--store", "store"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    monkeypatch.setenv("METALAB_TEST_BREAK_JOBS", "1")
    layout = ExperimentDir.at(tmp_path / "store" / "broken+1")
    handle = start(layout, metalab.LocalExecutor(cores=1), verbose=False)
    with pytest.raises(SweepError) as error:
        handle.result()
    message = str(error.value)
    assert "metalab worker: " in message and "RuntimeError: broken in jobs" in message
    assert "0 of 2 runs done" in message and "snakemake.log" in message


def test_the_failure_names_the_log_of_the_engine_that_ran_last(tmp_path) -> None:
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.outcome import engine_log

    layout = ExperimentDir.at(tmp_path)
    layout.snakemake_log.parent.mkdir(parents=True, exist_ok=True)
    layout.snakemake_log.write_text("$ snakemake\n")
    assert engine_log(layout) == (layout.snakemake_log, "snakemake")
    layout.array_log.write_text("$ python -m metalab_smk.slurm.array\n")
    os.utime(layout.snakemake_log, (1, 1))
    assert engine_log(layout) == (layout.array_log, "the SLURM array")


def _decoy(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """An unrelated live process in its own session (what a stale pid may name)."""
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, start_new_session=True)


def test_metalab_stop_signals_no_process_head_json_does_not_prove(tmp_path: Path) -> None:
    """A stale or crafted head.json (even one copying an unrelated process's pid, start
    time and command line) makes `metalab stop` say so in one line and signal nothing."""
    from metalab_smk.store.jsonio import atomic_write_json
    from metalab_smk.sweep.processes import process_identity

    exp_dir = _write(tmp_path, n=2)
    compiled = subprocess.run(
        [*CLI, "compile", "exp.py", "--store", "store"], cwd=tmp_path, capture_output=True
    )
    assert compiled.returncode == 0, compiled.stderr
    decoy = _decoy(tmp_path)
    try:
        _wait_for(lambda: process_identity(decoy.pid) is not None)
        base = {"kind": "local", "host": os.uname().nodename, "log": str(tmp_path / "log")}
        for head in ({"pid": decoy.pid}, process_identity(decoy.pid)):
            atomic_write_json(exp_dir / ".metalab" / "head.json", {**base, **head})
            stopped = subprocess.run(
                [*CLI, "stop", str(exp_dir)], capture_output=True, text=True, timeout=60
            )
            assert stopped.returncode == 0, stopped.stderr
            assert (
                f"head.json names pid {decoy.pid}, which is not this sweep's head (it ended); "
                "nothing to stop"
            ) in stopped.stdout
            assert "nothing was running" in stopped.stdout
            assert decoy.poll() is None  # alive: never signalled
    finally:
        decoy.kill()
        decoy.wait()


def test_worker_registrations_name_only_this_directorys_workers(tmp_path: Path) -> None:
    """A registered pid counts as a worker only while it runs the worker module in the
    directory and started before it registered (else `metalab stop` leaves it alone)."""
    from metalab_smk.store.layout import ExperimentDir
    from metalab_smk.sweep.locks import live_worker_pids
    from metalab_smk.sweep.processes import process_identity

    layout = ExperimentDir.at(tmp_path / "exp")
    layout.workers_dir.mkdir(parents=True)
    elsewhere = _decoy(tmp_path, "metalab_smk.worker")
    here = _decoy(layout.root, "metalab_smk.worker")
    try:
        for decoy in (elsewhere, here):
            _wait_for(lambda d=decoy: process_identity(d.pid) is not None)
            layout.worker_file(decoy.pid, os.uname().nodename).touch()
        assert live_worker_pids(layout.root) == [here.pid]
        hour_ago = time.time() - 3600  # registered before the process started: a reused pid
        os.utime(layout.worker_file(here.pid, os.uname().nodename), (hour_ago, hour_ago))
        assert live_worker_pids(layout.root) == []
    finally:
        for decoy in (elsewhere, here):
            decoy.kill()
            decoy.wait()


def test_recorded_processes_are_proven_by_start_time_and_command_line() -> None:
    from metalab_smk.sweep.processes import is_recorded_process, process_identity

    me = process_identity(os.getpid())
    assert me is not None and is_recorded_process(me)
    assert not is_recorded_process({**me, "start_ticks": me["start_ticks"] + 1})
    assert not is_recorded_process({**me, "cmdline": ["sleep", "60"]})
    assert not is_recorded_process({"pid": os.getpid()})  # nothing recorded proves nothing


def _refused_rerun_changes_nothing(tmp_path: Path, exp_dir: Path, *command: str) -> str:
    """Edit the experiment file, run ``command`` under the running sweep: it refuses in
    one line and leaves every file of the experiment directory as it was."""
    _wait_for(lambda: any(exp_dir.glob("logs/*.partial")), timeout=120)
    (tmp_path / "exp.py").write_text((tmp_path / "exp.py").read_text().replace('"y"', '"z"'))
    before = settled_hashes(exp_dir)
    refused = subprocess.run(
        [*CLI, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert file_hashes(exp_dir) == before
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "metalab stop" in refused.stderr
    return refused.stderr


@pytest.mark.parametrize("command", ["run", "submit"])
def test_a_run_refused_under_plain_snakemake_changes_nothing(tmp_path: Path, command) -> None:
    exp_dir = _write(tmp_path, n=4, sleep=30.0)
    compiled = subprocess.run(
        [*CLI, "compile", "exp.py", "--store", "store"], cwd=tmp_path, capture_output=True
    )
    assert compiled.returncode == 0, compiled.stderr
    snakemake = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=exp_dir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        error = _refused_rerun_changes_nothing(
            tmp_path, exp_dir, command, "exp.py", "--store", "store"
        )
        assert f"snakemake is running in store/ctl+1 (pid {snakemake.pid})" in error
    finally:
        subprocess.run([*CLI, "stop", str(exp_dir)], capture_output=True, timeout=120)
        snakemake.wait(timeout=60)


def test_a_run_refused_under_a_submitted_head_changes_nothing(tmp_path: Path) -> None:
    exp_dir = _write(tmp_path, n=4, sleep=30.0, chunk=1)
    submit = ["submit", "exp.py", "--store", "store", "--cores", "1", "--chunk-size", "1"]
    submitted = subprocess.run([*CLI, *submit], cwd=tmp_path, capture_output=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    try:
        head = json.loads((exp_dir / ".metalab" / "head.json").read_text())
        error = _refused_rerun_changes_nothing(
            tmp_path, exp_dir, "run", "exp.py", "--store", "store"
        )
        assert f"(pid {head['pid']})" in error
    finally:
        subprocess.run([*CLI, "stop", str(exp_dir)], capture_output=True, timeout=120)
