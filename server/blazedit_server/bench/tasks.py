"""Edit tasks for `blazedit bench`: the JSONL format of `data/edits/README.md`, bundled sets or any user file.

One task per line: `id`, `language`, `instruction`, `before` (the original file) and `after` (a reference
edit) are required; `source` and `tests` (Python only: `edited_file + "\\n\\n" + tests` exits 0 when the edit
is right) are optional. A file that breaks the format is rejected whole, naming the line that breaks it, so a
benchmark never silently runs on half a file.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from blazedit_client.errors import InvalidRequestError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EXTRA_TOKENS = 128  # default token cap of a task: its original file's tokens + this (the edit, the fences)


class TaskFileError(InvalidRequestError):
    """A task file is missing, unreadable or not in the edit-task JSONL format."""


class EditTask(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    source: str = ""
    language: str = Field(min_length=1)
    instruction: str = Field(min_length=1)
    before: str = Field(min_length=1)
    after: str
    tests: str | None = None


class TaskSet(BaseModel):
    """The tasks of one file; `name` is the file's stem (`humanevalfix-python`), the summary's row label."""

    name: str
    tasks: list[EditTask]


def bundled_dir() -> Path:
    return Path(str(resources.files("blazedit_server") / "data" / "edits"))


def bundled_sets() -> list[str]:
    return sorted(path.stem for path in bundled_dir().glob("*.jsonl"))


def bundled_path(name: str) -> Path:
    path = bundled_dir() / f"{name}.jsonl"
    if not path.is_file():
        raise TaskFileError(
            f"unknown task set {name!r}; bundled sets: {', '.join(bundled_sets())}", param="sets"
        )
    return path


def load_task_set(path: str | Path) -> TaskSet:
    path = Path(path)
    tasks = [_parse_line(path, number, line) for number, line in _read_lines(path) if line.strip()]
    if not tasks:
        raise TaskFileError(f"{path}: no tasks in the file", param="data")
    _check_unique_ids(path, tasks)
    return TaskSet(name=path.name.removesuffix(".jsonl"), tasks=tasks)


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskFileError(f"{path}: no such task file", param="data") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: cannot read the task file ({exc})", param="data") from None
    return list(enumerate(text.splitlines(), start=1))


def _parse_line(path: Path, number: int, line: str) -> EditTask:
    try:
        return EditTask.model_validate(json.loads(line))
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{path}:{number}: not a JSON object ({exc.msg})", param="data") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "line"
        raise TaskFileError(f"{path}:{number}: {where}: {error['msg']}", param="data") from None


def _check_unique_ids(path: Path, tasks: list[EditTask]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise TaskFileError(f"{path}: task id {task.id!r} appears twice", param="data")
        seen.add(task.id)


def spread(tasks: list[EditTask], limit: int | None) -> list[EditTask]:
    """`limit` tasks spaced evenly over the set (the whole set without a limit), so a short run still samples
    easy and hard tasks instead of the first few of one kind."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    return [tasks[i * len(tasks) // limit] for i in range(limit)]


def select(sets: list[str], data: list[str | Path], limit: int | None) -> list[TaskSet]:
    """Bundled sets by name plus user files, each cut to `limit` tasks."""
    paths = [bundled_path(name) for name in sets] + [Path(p) for p in data]
    if not paths:
        raise TaskFileError("no tasks: give --data FILE or --sets NAME", param="data")
    if limit is not None and limit < 1:
        raise TaskFileError("--limit must be at least 1", param="limit")
    loaded = [load_task_set(path) for path in paths]
    return [TaskSet(name=s.name, tasks=spread(s.tasks, limit)) for s in loaded]
