"""The edit prompt and the incremental extraction of the new file from a streamed reply."""

from __future__ import annotations

import pytest
from blazedit_server.engine.prompt import (
    BOM,
    FileExtractor,
    FileForm,
    edit_messages,
    fence_for,
    file_end,
    reply_start,
)

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
    assert "Original file (src/a.py):\n```python\nx = 1\n```" in content  # the path not in the fence
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


MARKDOWN = "# Usage\n\n```sh\npip install tool\n```\n\nThen run:\n\n```\nimport tool\n```\n\nSee the docs.\n"


def test_the_prompt_fence_is_longer_than_any_fence_of_the_file():
    assert fence_for("x = 1\n") == "```"
    assert fence_for(MARKDOWN) == "````"
    assert fence_for("text\n  `````python\ncode\n  `````\n") == "``````"  # indented fences count too
    assert fence_for("inline ``` is not a fence\n") == "```"
    content = edit_messages(MARKDOWN, "fix", "markdown")[0]["content"]
    assert f"````markdown\n{MARKDOWN}````\n" in content


@pytest.mark.parametrize("file", [ORIGINAL, "x = 1", MARKDOWN, "a = 'é'\n\n\n"])
@pytest.mark.parametrize(("language", "path"), [(None, None), ("python", "src/app.py")])
def test_file_end_is_where_the_closing_fence_begins(file, language, path):
    content = edit_messages(file, "fix", language, path)[0]["content"]
    end = file_end(file, language, path)
    assert content[:end].endswith(file if file.endswith("\n") else file + "\n")
    assert content[end:].startswith(fence_for(file) + "\n\nChange request:")


def test_a_file_with_fences_of_its_own_gets_its_reply_started_inside_the_longer_fence():
    assert reply_start("x = 1\n", "python") == ""  # the model opens its own fence
    assert reply_start(MARKDOWN, "markdown") == "````markdown\n"


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
@pytest.mark.parametrize(
    "rest_of_reply",
    [
        f"{MARKDOWN}````",
        f"{MARKDOWN}````\nI changed nothing.",
        f"{MARKDOWN}```",  # the model closes the longer fence with a plain one, and ends
        f"{MARKDOWN}```\n",
        MARKDOWN,  # the reply ended without its closing fence
    ],
)
def test_a_markdown_file_is_never_cut_at_its_own_fences(rest_of_reply, chunk):
    extractor = FileExtractor(MARKDOWN)  # the reply started with reply_start(MARKDOWN)
    reply = rest_of_reply
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    assert "".join(out) + extractor.finish() == MARKDOWN
    assert extractor.done == (reply != MARKDOWN) == extractor.may_end


@pytest.mark.parametrize(
    ("reply", "incomplete"),
    [
        ("```python\nx = 1\n```", False),
        ("```python\nx = 1\n", True),  # the answer ended inside the fenced file
        ("x = 0\nx = 1\n", False),  # bare code ends with the answer
        ("x = 1\nx = 0\n", False),  # bare code that starts with a new line
        ("no code at all", True),  # no fence and no line of the file: no file
    ],
)
def test_an_answer_that_ends_inside_a_fenced_file_is_incomplete(reply, incomplete):
    extractor = FileExtractor("x = 0\n")
    extractor.feed(reply)
    extractor.finish()
    assert extractor.may_end != incomplete


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize(
    "reply",
    [
        "I'm sorry, but I can't help with that.",
        "Here is the new file:\n",  # cut by the token limit before the file began
        "The function already does this.\n}\n",  # a closing brace is no line of the file's own
    ],
)
def test_a_reply_with_no_fence_and_no_line_of_the_file_is_no_file(reply, chunk):
    extractor = FileExtractor("int main() {\n    return 0;\n}\n")
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    assert "".join(out) + extractor.finish() == ""
    assert not extractor.may_end and not extractor.done


def test_the_answer_may_not_end_while_a_fenced_file_is_open():
    extractor = FileExtractor("x = 0\n")
    assert extractor.may_end  # no file yet: the answer is prose
    extractor.feed("```python\nx = 1\n")
    assert not extractor.may_end
    extractor.feed("``")
    assert not extractor.may_end  # not yet a fence
    extractor.feed("`")
    assert extractor.may_end  # the partial line is the closing fence
    markdown = FileExtractor(MARKDOWN)  # started inside the longer fence
    markdown.feed("# Usage\n\n```sh\npip install tool\n```")
    assert not markdown.may_end  # that fence closes the file's own block, not the file


def test_a_code_block_the_edit_adds_is_part_of_the_file():
    original = 'def f():\n    """Doc."""\n'
    new = 'def f():\n    """Doc.\n\n    ```python\n    f()\n    ```\n    """\n'
    extractor = FileExtractor(original)
    assert extractor.feed(f"```python\n{new}```\n") == new
    assert extractor.done


def test_a_short_bare_fence_closes_the_file_only_if_the_answer_ends_there():
    extractor = FileExtractor(MARKDOWN)  # started inside the longer fence
    assert extractor.feed("# Usage\n\n```\n") == "# Usage\n\n"
    assert extractor.may_end  # the end of the file, if the answer ends here
    assert extractor.feed("output\n") == "```\noutput\n"  # it went on: a code block of the file
    assert not extractor.may_end
    assert extractor.feed("```\n") == "```\n"  # closes that block, not the file
    assert not extractor.may_end
    assert extractor.feed("end\n```") == "end\n"
    assert extractor.may_end
    assert extractor.finish() == "" and extractor.done


@pytest.mark.parametrize(
    ("file", "form", "plain"),
    [
        ("a\nb\n", FileForm(bom=False, crlf=False), "a\nb\n"),
        ("a\r\nb", FileForm(bom=False, crlf=True), "a\nb"),
        ("a\r\nb\n", FileForm(bom=False, crlf=False), "a\r\nb\n"),  # mixed: shown as it is
        ("a\rb\r", FileForm(bom=False, crlf=False), "a\rb\r"),
        (BOM + "a\r\n", FileForm(bom=True, crlf=True), "a\n"),
        (BOM + "a", FileForm(bom=True, crlf=False), "a"),
    ],
)
def test_the_model_reads_a_file_without_its_bom_and_crlf(file, form, plain):
    assert FileForm.of(file) == form
    assert form.plain(file) == plain


CRLF_ORIGINAL = BOM + ORIGINAL.replace("\n", "\r\n")


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
@pytest.mark.parametrize(
    "reply",
    [
        f"```python\n{NEW}```",  # the model writes "\n"
        f"```python\n{NEW.replace(chr(10), chr(13) + chr(10))}```",  # or CRLF itself: never doubled
        NEW,  # no fence
    ],
)
def test_the_edited_file_gets_the_originals_bom_and_crlf_back(reply, chunk):
    extractor = FileExtractor(CRLF_ORIGINAL)
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    assert "".join(out) + extractor.finish() == BOM + NEW.replace("\n", "\r\n")


@pytest.mark.parametrize("chunk", [1, 1000])
def test_a_crlf_file_without_a_final_line_break_keeps_it_so(chunk):
    extractor = FileExtractor("x = 0\r\ny = 2")
    reply = "```\nx = 1\ny = 2\n```\n"
    out = [extractor.feed(reply[i : i + chunk]) for i in range(0, len(reply), chunk)]
    assert "".join(out) + extractor.finish() == "x = 1\r\ny = 2"
