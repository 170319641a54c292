"""``metalab completion bash|zsh``: a shell completion script written from the command
line's own parser, so it names every command and option there is (docs/guide.md,
"Shell completion"). Words that are not options complete as file names."""

from __future__ import annotations

import argparse
import shlex
from functools import partial
from typing import Any

SHELLS = ("bash", "zsh")

# bash (and zsh through bashcompinit): the command's words, else options, else files
_SCRIPT = """\
# metalab completion ({shell}): eval "$(metalab completion {shell})"
{preamble}_metalab() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} words
    if [ "$COMP_CWORD" -eq 1 ]; then
        words={top}
    else
        case "${{COMP_WORDS[1]}}" in
{cases}
            *) words="" ;;
        esac
    fi
    if [[ "$cur" == -* || "$COMP_CWORD" -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur") $(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _metalab metalab
"""
_ZSH_PREAMBLE = "autoload -U +X bashcompinit && bashcompinit\n"


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def words_of(parser: argparse.ArgumentParser) -> list[str]:
    """What may follow a command: its options and the choices of its positionals."""
    words: list[str] = []
    for action in parser._actions:
        if action.option_strings:
            words += [o for o in action.option_strings if o.startswith("--")]
        elif action.choices:
            words += [str(choice) for choice in action.choices]
    return words


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` for ``shell`` (bash or zsh)."""
    commands = commands_of(parser)
    cases = "\n".join(
        f"            {name}) words={shlex.quote(' '.join(words_of(sub)))} ;;"
        for name, sub in commands.items()
    )
    return _SCRIPT.format(
        shell=shell,
        preamble=_ZSH_PREAMBLE if shell == "zsh" else "",
        top=shlex.quote(" ".join([*commands, "--help", "--version"])),
        cases=cases,
    )


def add_completion_command(commands: Any, parser: argparse.ArgumentParser) -> None:
    """Register ``metalab completion SHELL`` (``parser``: the whole command line)."""
    sub = commands.add_parser("completion", help="print a shell completion script (bash, zsh)")
    sub.add_argument("shell", choices=SHELLS, help='the shell; eval "$(metalab completion SHELL)"')
    sub.set_defaults(func=partial(_print_script, parser))


def _print_script(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    print(completion_script(parser, args.shell), end="")
    return 0
