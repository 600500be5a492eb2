"""The fenced snippets of the user documentation, and the shell commands in them.

The documents are the README, each client's README and the editor and deployment guides. A snippet is a
fenced block with its info string (```sh, ```json, ```lua, ```toml, ```yaml, ```text); a shell command may
span lines with a trailing backslash or an open quote, and end with a # comment.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


def documents() -> list[Path]:
    candidates = [ROOT / "README.md", *sorted(ROOT.glob("clients/*/README.md")), ROOT / "docs/editors.md"]
    return [path for path in [*candidates, ROOT / "docs/deployment.md"] if path.is_file()]


def snippets(paths: list[Path] | None = None) -> list[Snippet]:
    found = []
    for path in paths or documents():
        text = path.read_text()
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Snippet(path, line, match.group(1).lower(), match.group(2)))
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


def commands(snippet: Snippet) -> list[str]:
    """The commands of a sh/bash snippet: continuation lines joined, comment and blank lines left out."""
    found, pending = [], ""
    for line in snippet.text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1]
        elif _complete(pending):
            found.append(pending.strip())
            pending = ""
        else:
            pending += "\n"
    assert not pending, f"{snippet}: unfinished command {pending!r}"
    return found


def split_env(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`NAME=value ... program args` -> the variables and the rest."""
    env = {}
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        name, value = argv.pop(0).split("=", 1)
        env[name] = value
    return env, argv


def curl_commands() -> list[tuple[str, list[str]]]:
    """Every curl command in the documents: (where, argv)."""
    found = []
    for snippet in snippets():
        if snippet.lang in ("sh", "bash"):
            for command in commands(snippet):
                _, argv = split_env(shlex.split(command, comments=True))
                if argv and argv[0] == "curl":
                    found.append((str(snippet), argv))
    return found
