"""Every `robot-app` command in the docs' code blocks still parses.

Users copy these lines; a renamed flag or subcommand must fail here, not on their machine.
Only the parsing is checked (argparse of the real CLI, nothing runs); lines with a `...`
placeholder are left out, as they are not meant to run as written.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from robot_app.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    """(where, the argument string after `robot-app`) for each command line of a shell code block."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                for command in re.split(r"\s*(?:&&|;|\|)\s*", line):
                    match = re.match(r"^(?:\S*/)?robot-app (.*)$", command)
                    if match and "..." not in command:
                        found.append((f"{doc.name}: {command[:60]}", match.group(1)))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 20, COMMANDS  # the extraction itself works


@pytest.mark.parametrize("where,args", COMMANDS, ids=[where for where, _ in COMMANDS])
def test_a_documented_command_parses(where, args):
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(shlex.split(args))
    except SystemExit as exc:
        assert exc.code == 0, f"{where}: {stderr.getvalue().strip().splitlines()[-1]}"
