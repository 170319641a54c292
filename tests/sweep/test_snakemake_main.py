"""``python -m metalab_smk.sweep.snakemake_main``: Snakemake's command line with its exit
code, which leaves no job-rate timer behind to keep the process alive after the work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from process_env import subprocess_env

from metalab_smk.sweep.snakemake_main import LOCAL_ONLY, SNAKEMAKE_MODULE, cancel_timers

SNAKEFILE = textwrap.dedent(
    """
    rule all:
        input: "a.txt"

    rule a:
        output: "a.txt"
        shell: "echo made > {output}"
    """
)

# Runs Snakemake's main in this process, then lists the timers still pending.
PROBE = textwrap.dedent(
    """
    import sys, threading
    from metalab_smk.sweep.snakemake_main import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    left = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for t in left:
        t.join(timeout=5)
    print("exit", code, "timers", sum(t.is_alive() for t in left), "seen", len(left))
    print("html reporter", "snakemake.report.html_reporter" in sys.modules)
    print("slurm plugin", "snakemake_executor_plugin_slurm" in sys.modules)
    """
)


def test_cancel_timers_ends_pending_timers() -> None:
    fired: list[int] = []
    timer = threading.Timer(60, fired.append, (1,))
    timer.start()
    assert cancel_timers() >= 1
    timer.join(timeout=5)
    assert not timer.is_alive() and fired == []


def _snakemake(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            SNAKEMAKE_MODULE,
            *args,
            "--cores",
            "1",
            "--quiet",
            "progress",
            "rules",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(directory),
    )


def test_builds_and_keeps_snakemakes_exit_code(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    done = _snakemake(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.txt").read_text() == "made\n"
    missing = _snakemake(tmp_path, "no-such-target.txt")
    assert missing.returncode == 1
    assert "no-such-target.txt" in missing.stderr + missing.stdout


def _probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Snakemake's main run by PROBE on SNAKEFILE in ``tmp_path``; checks it succeeded."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "probe.py").write_text(PROBE)
    done = subprocess.run(
        [sys.executable, "probe.py", "--cores", "1", "--quiet", "all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(tmp_path, **env),
    )
    assert done.returncode == 0, done.stderr
    return done


def test_no_timer_left_once_snakemake_is_done(tmp_path: Path) -> None:
    done = _probe(tmp_path)
    assert (tmp_path / "a.txt").is_file()
    words = done.stdout.split()
    assert words[:4] == ["exit", "0", "timers", "0"], done.stdout
    assert int(words[5]) >= 1  # Snakemake did arm its rate-limiter timer


@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="the Snakemake SLURM executor plugin is not installed",
)
@pytest.mark.parametrize("local", ["1", "0"])
def test_a_local_sweep_starts_snakemake_without_the_slurm_plugin(
    tmp_path: Path, local: str
) -> None:
    done = _probe(tmp_path, **{LOCAL_ONLY: local})
    assert (tmp_path / "a.txt").read_text() == "made\n"  # the local executor still runs it
    *_, reporter, loaded = done.stdout.splitlines()
    assert loaded == f"slurm plugin {local == '0'}", done.stdout
    assert reporter == f"html reporter {local == '0'}", done.stdout  # nor its HTML report


def test_ending_at_once_loses_no_output(tmp_path: Path) -> None:
    """The process skips the interpreter's teardown: Snakemake's last lines still reach
    the pipe and its log file, whole, and so does what the workflow printed last."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE + '\nonsuccess:\n    print("printed last")\n')
    done = subprocess.run(
        [sys.executable, "-m", SNAKEMAKE_MODULE, "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    (log,) = (tmp_path / ".snakemake" / "log").glob("*.snakemake.log")
    assert "2 of 2 steps (100%) done" in log.read_text()
    out = done.stdout + done.stderr
    assert "2 of 2 steps (100%) done" in out and f"Complete log(s): {log}" in out, out
    assert "Elapsed time:" in out, out  # Snakemake's very last line
    assert "printed last" in done.stdout, done.stdout
