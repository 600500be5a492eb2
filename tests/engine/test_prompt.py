"""The edit prompt and the incremental extraction of the new file from a streamed reply."""

from __future__ import annotations

import pytest
from blazedit_server.engine.prompt import FileExtractor, edit_messages

ORIGINAL = "import os\n\n\ndef main():\n    print(os.getcwd())\n"
NEW = "import os\n\n\ndef main():\n    print(os.getcwd(), flush=True)\n"


def extract(reply: str, chunk: int) -> tuple[str, bool]:
    extractor = FileExtractor(ORIGINAL)
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    return "".join(out) + extractor.finish(), extractor.done


REPLIES = {
    "fence with language": f"```python\n{NEW}```",
    "fence without language": f"```\n{NEW}```\n",
    "prose before and after": f"Here is the new file:\n\n```python\n{NEW}```\n\nI added flush=True.",
    "no fence": NEW,
    "no fence, prose first": f"Sure!\n{NEW}",
}


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize("name", list(REPLIES))
def test_extracts_the_new_file(name, chunk):
    text, _ = extract(REPLIES[name], chunk)
    expected = f"Sure!\n{NEW}" if name == "no fence, prose first" else NEW  # without a fence prose is kept
    assert text == expected


def test_closing_fence_ends_the_file():
    extractor = FileExtractor(ORIGINAL)
    assert extractor.feed("```py\nx = 1\n") == "x = 1\n"
    assert not extractor.done
    assert extractor.feed("``") == ""  # might be the closing fence: held back
    assert extractor.feed("`\nprose") == ""
    assert extractor.done


def test_streams_inside_the_fence_without_waiting_for_line_ends():
    extractor = FileExtractor(ORIGINAL)
    extractor.feed("```python\n")
    assert extractor.feed("import o") == "import o"
    assert extractor.feed("s\n") == "s\n"


def test_unclosed_fence_keeps_the_last_partial_line():
    text, done = extract(f"```python\n{NEW}# trailing", 5)
    assert text == NEW + "# trailing" and not done


def test_backticks_inside_code_are_content():
    reply = "```python\nx = '```not a fence'\ny = 1\n```"
    text, done = extract(reply, 2)
    assert text == "x = '```not a fence'\ny = 1\n" and done


def test_edit_prompt_holds_file_instruction_language_and_path():
    [message] = edit_messages("x = 1", "  rename x  ", language="python", path="src/a.py")
    assert message["role"] == "user"
    content = message["content"]
    assert "```python src/a.py\nx = 1\n```" in content
    assert "Change request:\nrename x\n" in content


@pytest.mark.parametrize("chunk", [1, 2, 7, 1000])
@pytest.mark.parametrize(
    "reply",
    [
        "```python\nx = 1\ny = 2\n```",
        "Here it is:\n```\nx = 1\ny = 2\n```\nDone.",
        "```python\nx = 1\ny = 2\n",  # the reply ended without its closing fence
        "x = 0\nx = 1\ny = 2\n",  # bare code starting like the original
    ],
)
def test_a_file_without_a_final_newline_gets_none_from_the_fence(reply, chunk):
    original = "x = 0\ny = 2"
    extractor = FileExtractor(original)
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    text = "".join(out) + extractor.finish()
    expected = "x = 0\nx = 1\ny = 2" if reply.startswith("x = 0") else "x = 1\ny = 2"
    assert text == expected


def test_the_held_line_break_comes_back_when_the_file_goes_on():
    extractor = FileExtractor("a = 1")
    assert extractor.feed("```\na = 1\n") == "a = 1"
    assert extractor.feed("b") == "\nb"  # streamed without waiting for the line end
    assert extractor.feed(" = 2\n```\n") == " = 2"
    assert extractor.done
