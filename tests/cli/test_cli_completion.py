"""`metalab completion bash|zsh`: the script names every command and option of the parser,
and bash completes commands, options and file names with it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from metalab_smk.cli import build_parser, main
from metalab_smk.cli_completion import commands_of, completion_script


def test_the_script_names_every_command_and_option(capsys):
    parser = build_parser()
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert script == completion_script(parser, "bash")
    for name, sub in commands_of(parser).items():
        line = next(line for line in script.splitlines() if line.strip().startswith(f"{name})"))
        for action in sub._actions:
            for option in action.option_strings:
                assert option in line or not option.startswith("--"), (name, option)
    assert completion_script(parser, "zsh").startswith("# metalab completion (zsh)")


def _complete(script: str, words: list[str], cwd) -> list[str]:
    """COMPREPLY of ``_metalab`` for the command line ``words`` (the last one typed)."""
    line = " ".join(words)
    code = f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _metalab\n"
    code += 'printf "%s\\n" "${COMPREPLY[@]}"\n'
    done = subprocess.run(["bash", "-c", code], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_files(tmp_path):
    script = completion_script(build_parser(), "bash")
    (tmp_path / "exp.py").write_text("")
    assert _complete(script, ["metalab", "st"], tmp_path) == ["status", "stop"]
    assert _complete(script, ["metalab", "results", "--j"], tmp_path) == ["--json"]
    assert _complete(script, ["metalab", "run", "ex"], tmp_path) == ["exp.py"]
    assert _complete(script, ["metalab", "completion", "z"], tmp_path) == ["zsh"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_loads_the_script():
    code = f'eval "$({sys.executable} -m metalab_smk.cli completion zsh)"'
    assert subprocess.run(["zsh", "-c", code], capture_output=True).returncode == 0
