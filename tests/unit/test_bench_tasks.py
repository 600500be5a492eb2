"""Task loading for `blazedit bench`: bundled sets, user files, bad files rejected with the line at fault."""

from __future__ import annotations

import json

import pytest
from blazedit_client.errors import InvalidRequestError
from blazedit_server.bench import tasks

GOOD = {
    "id": "mine/0",
    "language": "python",
    "instruction": "Rename x.",
    "before": "x = 1\n",
    "after": "y = 1\n",
}


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bundled_sets_load_with_the_readme_fields():
    names = tasks.bundled_sets()
    assert {"editeval", "humanevalfix-python", "nofuneval-latency"} <= set(names)
    loaded = tasks.load_task_set(tasks.bundled_path("humanevalfix-python"))
    assert loaded.name == "humanevalfix-python"
    assert len(loaded.tasks) == 164
    assert all(t.tests for t in loaded.tasks)


def test_user_file_loads_with_optional_fields_missing(tmp_path):
    path = write_lines(tmp_path / "mine.jsonl", [json.dumps(GOOD), "", json.dumps({**GOOD, "id": "mine/1"})])
    loaded = tasks.load_task_set(path)
    assert loaded.name == "mine"
    assert [t.id for t in loaded.tasks] == ["mine/0", "mine/1"]
    assert loaded.tasks[0].tests is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "mine.jsonl:2: not a JSON object"),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "before"}),
            "mine.jsonl:2: before: Field required",
        ),
        (json.dumps({**GOOD, "instruction": ""}), "mine.jsonl:2: instruction:"),
        (json.dumps([1, 2]), "mine.jsonl:2:"),
        (json.dumps(GOOD), "task id 'mine/0' appears twice"),
    ],
)
def test_bad_lines_are_rejected_with_their_line_number(tmp_path, line, message):
    path = write_lines(tmp_path / "mine.jsonl", [json.dumps(GOOD), line])
    with pytest.raises(tasks.TaskFileError) as caught:
        tasks.load_task_set(path)
    assert message in caught.value.message
    assert isinstance(caught.value, InvalidRequestError)


def test_missing_empty_and_binary_files_are_clear_errors(tmp_path):
    with pytest.raises(tasks.TaskFileError, match="no such task file"):
        tasks.load_task_set(tmp_path / "absent.jsonl")
    with pytest.raises(tasks.TaskFileError, match="no tasks"):
        tasks.load_task_set(write_lines(tmp_path / "empty.jsonl", [""]))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(tasks.TaskFileError, match="cannot read"):
        tasks.load_task_set(binary)


def test_unknown_set_names_the_bundled_ones():
    with pytest.raises(tasks.TaskFileError, match="humanevalfix-python"):
        tasks.select(["no-such-set"], [], None)


def test_spread_takes_evenly_spaced_tasks():
    loaded = tasks.load_task_set(tasks.bundled_path("editeval")).tasks
    picked = tasks.spread(loaded, 4)
    assert [t.id for t in picked] == [loaded[i].id for i in (0, 29, 58, 87)]
    assert tasks.spread(loaded, None) == loaded
    assert tasks.spread(loaded[:3], 10) == loaded[:3]


def test_select_combines_sets_and_files_and_checks_the_limit(tmp_path):
    path = write_lines(tmp_path / "mine.jsonl", [json.dumps(GOOD)])
    chosen = tasks.select(["editeval"], [path], 2)
    assert [(s.name, len(s.tasks)) for s in chosen] == [("editeval", 2), ("mine", 1)]
    with pytest.raises(tasks.TaskFileError, match="--limit"):
        tasks.select(["editeval"], [], 0)
    with pytest.raises(tasks.TaskFileError, match="--data"):
        tasks.select([], [], None)
