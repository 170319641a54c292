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
    print("sql", any(name in sys.modules for name in ("sqlmodel", "sqlalchemy")))
    """
)


def test_cancel_timers_ends_pending_timers() -> None:
    fired: list[int] = []
    timer = threading.Timer(60, fired.append, (1,))
    timer.start()
    assert cancel_timers() >= 1
    timer.join(timeout=5)
    assert not timer.is_alive() and fired == []


def _python(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(directory, **env),
    )


def _snakemake(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _python(
        directory, "-m", SNAKEMAKE_MODULE, *args, "--cores", "1", "--quiet", "progress", "rules"
    )


def test_builds_and_keeps_snakemakes_exit_code(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    done = _snakemake(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.txt").read_text() == "made\n"
    missing = _snakemake(tmp_path, "no-such-target.txt")
    assert missing.returncode == 1
    assert "no-such-target.txt" in missing.stderr + missing.stdout


def _probe(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Snakemake's main run by PROBE on SNAKEFILE in ``tmp_path``; checks it succeeded."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "probe.py").write_text(PROBE)
    done = _python(tmp_path, "probe.py", "--cores", "1", *args, "--quiet", "all", **env)
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
    *_, reporter, loaded, _ = done.stdout.splitlines()
    assert loaded == f"slurm plugin {local == '0'}", done.stdout
    assert reporter == f"html reporter {local == '0'}", done.stdout  # nor its HTML report


def test_a_local_sweeps_snakemake_keeps_its_metadata_without_the_database_backend(
    tmp_path: Path,
) -> None:
    """SQLModel and SQLAlchemy (Snakemake's database backend) are not imported; the
    metadata the file backend wrote is what a usual Snakemake reads back."""
    local = _probe(tmp_path, **{LOCAL_ONLY: "1"})
    assert local.stdout.splitlines()[-1] == "sql False", local.stdout
    assert list((tmp_path / ".snakemake" / "metadata").iterdir())  # a.txt's record
    usual = _snakemake(tmp_path, "--summary")
    assert usual.returncode == 0, usual.stderr
    line = next(row for row in usual.stdout.splitlines() if row.startswith("a.txt"))
    assert line.split("\t")[2] == "a", usual.stdout  # the rule, from the metadata


def test_snakemake_started_with_a_persistence_backend_imports_it_as_usual(
    tmp_path: Path,
) -> None:
    asked = _probe(tmp_path, "--persistence-backend", "db", **{LOCAL_ONLY: "1"})
    assert asked.stdout.splitlines()[-1] == "sql True", asked.stdout
    assert (tmp_path / "a.txt").read_text() == "made\n"


def test_ending_at_once_loses_no_output(tmp_path: Path) -> None:
    """The process skips the interpreter's teardown: Snakemake's last lines still reach
    the pipe and its log file, whole, and so does what the workflow printed last."""
    (tmp_path / "Snakefile").write_text(SNAKEFILE + '\nonsuccess:\n    print("printed last")\n')
    done = _python(tmp_path, "-m", SNAKEMAKE_MODULE, "--cores", "1")
    assert done.returncode == 0, done.stderr
    (log,) = (tmp_path / ".snakemake" / "log").glob("*.snakemake.log")
    assert "2 of 2 steps (100%) done" in log.read_text()
    out = done.stdout + done.stderr
    assert "2 of 2 steps (100%) done" in out and f"Complete log(s): {log}" in out, out
    assert "Elapsed time:" in out, out  # Snakemake's very last line
    assert "printed last" in done.stdout, done.stdout


UNEXPECTED = textwrap.dedent(
    """
    import sys
    from metalab_smk.sweep import snakemake_main as sm
    made = sm._sql_stand_ins

    def broken():
        stand_ins = made()
        del stand_ins["sqlmodel"].Field  # as if Snakemake used more of SQLModel
        return stand_ins

    sm._sql_stand_ins = broken
    print("stand-ins", sm.file_persistence_only())
    import snakemake.persistence, snakemake.persistence.db
    print("db", snakemake.persistence.db.DbPersistence.__module__)
    """
)


def test_a_snakemake_the_stand_ins_do_not_fit_is_imported_as_usual(tmp_path: Path) -> None:
    done = _python(tmp_path, "-c", UNEXPECTED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stand-ins", "False", "db", "snakemake.persistence.db"]
