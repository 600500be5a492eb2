"""The edit prompt, and the extraction of the new file from the model's streamed reply.

The prompt is one user turn (the Blazedit dataset prompt): the original file in a fenced block, the change
request, and a request for the new file. Replies come as a fenced block (with or without a language tag),
possibly with prose before or after, or as bare code. `FileExtractor` turns the streamed reply into the
streamed file content: it drops prose and fences, holds back a line that might be the closing fence, and says
when the file is complete so decoding can stop.

A file with code fences of its own (Markdown, docstrings with examples) is wrapped in a longer fence, and
the model's reply is started with that fence (`reply_start`): left to itself the model opens a plain
three-backtick fence, takes the file's first closing fence for its own and stops there, which would delete the
rest of the file. Fences the edit adds are tracked as code blocks of the file, so they never end it either.
Even inside the longer fence a small model may take the file's own closing fence for the end and stop: while a
fenced file is open the answer may not end (`FileExtractor.may_end`; the engine masks the end tokens), and an
answer that still ends inside the file is reported `incomplete`, so the rest of the file is kept.

A fence needs a line of its own, so the prompt closes a file that lacks a final line break with one before its
fence, and the model's reply does the same: for such a file the line break before the closing fence belongs to
the fence, and the extractor drops it, so an edit never adds a final newline the user did not have.

The model reads and writes a file without its UTF-8 byte order mark and with "\n" line breaks (`FileForm`):
shown CRLF it writes "\n" anyway (so prompt lookup's copies of CRLF tokens would fail at every line break),
and it drops the BOM; the extractor gives the edited file the original's BOM and CRLF line breaks back, so an
edit never rewrites the line endings of the whole file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = "```"
BOM = "\ufeff"
_BARE_LF = re.compile(r"(?<!\r)\n")
_FENCE_RUN = re.compile(r"^[ \t]*(`{3,})", re.MULTILINE)

EDIT_PROMPT = """Given a code file, please apply the change requests and generate the new file.

Original file{named}:
{fence}{language}
{file}{newline}{fence}

Change request:
{instruction}

Please generate the new code file in the "New file" section below."""


def fence_for(file: str) -> str:
    """A fence longer than every run of backticks that opens a line of the file (as in CommonMark), so that no
    line of a Markdown file with code blocks of its own can close it."""
    return "`" * max([3, *(len(run) + 1 for run in _FENCE_RUN.findall(file))])


def _head(file: str, language: str | None, path: str | None) -> dict[str, str]:
    """The prompt's fields before the file. The path goes in the heading, not in the fence's info string:
    after "```python app.py" the model began 5 of 30 edits with a line of its own ("# New file", the path),
    which became the file's first line; after "Original file (app.py):" and "```python", none (llama.cpp,
    the default pair, 6 files x 5 paths)."""
    return {"fence": fence_for(file), "language": language or "", "named": f" ({path})" if path else ""}


def edit_messages(
    file: str, instruction: str, language: str | None = None, path: str | None = None
) -> list[dict]:
    newline = "" if file.endswith("\n") else "\n"
    content = EDIT_PROMPT.format(
        **_head(file, language, path), file=file, newline=newline, instruction=instruction.strip()
    )
    return [{"role": "user", "content": content}]


def file_end(file: str, language: str | None = None, path: str | None = None) -> int:
    """Where the closing fence begins in the edit message's text (`edit_messages`): an answer copies the
    original file up to there, never the fence itself, which the prompt tokenizes with the blank line after it
    and the answer with its end."""
    head = EDIT_PROMPT[: EDIT_PROMPT.index("{file}")].format(**_head(file, language, path))
    return len(head) + len(file) + (0 if file.endswith("\n") else 1)


def reply_start(file: str, language: str | None = None) -> str:
    """The text the model's reply starts with: the opening of the longer fence for a file with fences of its
    own, else nothing (the model opens its fence itself)."""
    fence = fence_for(file)
    return f"{fence}{language or ''}\n" if fence != FENCE else ""


def fence_length(line: str) -> int:
    """The length of the backtick fence that opens this line (0: none)."""
    stripped = line.strip()
    return len(stripped) - len(stripped.lstrip("`")) if stripped.startswith(FENCE) else 0


def code_lines(text: str) -> set[str]:
    """The lines of `text` with a letter or digit, stripped: a line of prose rarely equals one of them, where
    a closing brace would."""
    return {line.strip() for line in text.splitlines() if any(c.isalnum() for c in line)}


def is_bare_fence(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(FENCE) and stripped == "`" * len(stripped)


@dataclass(frozen=True)
class FileForm:
    """What of a file the model does not see: a leading BOM, and CRLF line breaks where every line break of
    the file is one (a file of mixed line breaks is shown as it is)."""

    bom: bool
    crlf: bool

    @classmethod
    def of(cls, file: str) -> FileForm:
        body = file.removeprefix(BOM)
        breaks = body.count("\n")
        return cls(bom=file.startswith(BOM), crlf=breaks > 0 and body.count("\r\n") == breaks)

    def plain(self, file: str) -> str:
        """The file as the model reads it."""
        body = file.removeprefix(BOM) if self.bom else file
        return body.replace("\r\n", "\n") if self.crlf else body


class FileExtractor:
    """Incremental reply -> file content. States: "before" the file, "inside" it, "after" it.

    Inside, a fence with an info string opens a code block of the file and a bare fence at least as long
    closes it. Outside such a block a bare fence at least as long as the reply's opening fence closes the
    file; a shorter one (the model answered the prompt's longer fence with a plain one) closes it only if the
    answer ends there, else it opens a code block of the file. The content comes out in the original's
    `FileForm`.
    """

    def __init__(self, original: str) -> None:
        self.form = FileForm.of(original)
        self.plain = original = self.form.plain(original)  # the file as the model reads it
        self.bom_due = self.form.bom  # the BOM goes before the first content
        self.after_cr = False  # the content so far ends with "\r": a "\n" next completes its CRLF
        self.first_line = original.split("\n", 1)[0].strip()
        self.final_newline = original.endswith("\n")
        self.opening = len(fence_for(original))
        self.state = "inside" if self.opening > len(FENCE) else "before"  # see reply_start
        self.fenced = self.state == "inside"  # the file opened with a fence, so it must close with one
        self.prose = ""  # complete lines seen before the file started
        self.pending = ""  # the current partial line
        self.held = ""  # a line break held back until the file goes on (it may be the fence's)
        self.block = 0  # the fence length of the file's own code block we are in (0: none)
        self.maybe_closing: str | None = None  # a short bare fence: the closing one if the answer ends here
        self.no_file = False  # the answer ended with neither a fence nor a line of the file

    @property
    def done(self) -> bool:
        return self.state == "after"

    @property
    def may_end(self) -> bool:
        """Whether the answer may end here: not while a fenced file is open (a small model takes a closing
        fence of the file's own for the end of the file), unless it just wrote what may close the file."""
        if self.no_file:
            return False
        if not (self.fenced and self.state == "inside"):
            return True
        if self.maybe_closing is not None and not self.pending:
            return True
        return self.could_close(self.pending)

    def feed(self, text: str) -> str:
        """File content that this piece of reply completes."""
        return self.in_form(self.extract(text))

    def finish(self) -> str:
        """The rest at the end of the reply (`rest`)."""
        return self.in_form(self.rest())

    def in_form(self, content: str) -> str:
        """Content in the original's form: BOM first, each bare "\n" as "\r\n" in a CRLF file."""
        if not content:
            return content
        if self.form.crlf:
            head = "\n" if self.after_cr and content.startswith("\n") else ""
            content = head + _BARE_LF.sub("\r\n", content[len(head) :])
            self.after_cr = content.endswith("\r")
        if self.bom_due:
            content, self.bom_due = BOM + content, False
        return content

    def extract(self, text: str) -> str:
        self.pending += text
        out = []
        while self.state != "after" and "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            out.append(self.take_line(line))
        if self.state == "inside" and self.pending and not FENCE.startswith(self.pending.lstrip()[:3]):
            # a partial line that cannot become a fence
            out.append(self.resolve_as_content() + self.held + self.pending)
            self.held = self.pending = ""
        return "".join(out)

    def take_line(self, line: str) -> str:
        if self.state == "inside":
            return self.resolve_as_content() + self.inside_line(line)
        if fence_length(line):  # the opening fence: whatever came before it was prose
            self.state, self.opening, self.fenced = "inside", fence_length(line), True
            return ""
        if not self.prose.strip() and line.strip() and line.strip() == self.first_line:
            self.state = "inside"  # bare code that starts like the original file
            return self.file_line(line)
        self.prose += line + "\n"
        return ""

    def inside_line(self, line: str) -> str:
        """A complete line inside the file: content, a fence of the file's own code blocks, or its end."""
        length, bare = fence_length(line), is_bare_fence(line)
        if self.block:
            if bare and length >= self.block:
                self.block = 0
            return self.file_line(line)
        if not bare:  # plain content, or a fence with an info string: it opens a code block of the file
            self.block = length
            return self.file_line(line)
        if length >= self.opening:
            self.state, self.held = "after", ""
            return ""
        self.maybe_closing = line
        return ""

    def could_close(self, line: str) -> bool:
        return is_bare_fence(line) and not self.block

    def resolve_as_content(self) -> str:
        """The answer went on after a short bare fence: it opened a code block of the file."""
        if self.maybe_closing is None:
            return ""
        line, self.maybe_closing = self.maybe_closing, None
        self.block = fence_length(line)
        return self.file_line(line)

    def file_line(self, line: str) -> str:
        """A complete line of the file; its line break waits for what follows when it may be the fence's."""
        if self.final_newline:
            return line + "\n"
        out, self.held = self.held + line, "\n"
        return out

    def rest(self) -> str:
        """The rest at the end of the reply: an unclosed file's last partial line, or a reply without fences,
        which is the whole file if it has a line of the original. A reply with neither (a refusal, an
        explanation, or prose cut by the token limit) is no file: taking it would replace the user's file with
        it. Then nothing comes out and the answer may not end here (`may_end`), so the edit is incomplete."""
        rest, self.pending = self.pending, ""
        if self.state == "before":
            reply = self.prose + rest
            if code_lines(reply) & code_lines(self.plain):
                return reply
            self.no_file = True
            return ""
        if self.state == "after":
            return ""
        if not rest:
            if self.maybe_closing is not None:  # the answer ended at a short bare fence: the closing one
                self.maybe_closing, self.state = None, "after"
            return ""
        out = self.resolve_as_content()
        if self.could_close(rest):  # the answer ended on a bare fence
            self.state = "after"
            return out
        out, self.held = out + self.held + rest, ""
        return out
