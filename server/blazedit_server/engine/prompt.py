"""The edit prompt, and the extraction of the new file from the model's streamed reply.

The prompt is one user turn (the Blazedit dataset prompt): the original file in a fenced block, the change
request, and a request for the new file. Replies come as a fenced block (with or without a language tag),
possibly with prose before or after, or as bare code. `FileExtractor` turns the streamed reply into the
streamed file content: it drops prose and fences, holds back a line that might be the closing fence, and says
when the file is complete so decoding can stop.

A fence needs a line of its own, so the prompt closes a file that lacks a final line break with one before its
fence, and the model's reply does the same: for such a file the line break before the closing fence belongs to
the fence, and the extractor drops it, so an edit never adds a final newline the user did not have.
"""

from __future__ import annotations

FENCE = "```"

EDIT_PROMPT = """Given a code file, please apply the change requests and generate the new file.

Original file:
{fence}{language}
{file}{newline}{fence}

Change request:
{instruction}

Please generate the new code file in the "New file" section below."""


def edit_messages(
    file: str, instruction: str, language: str | None = None, path: str | None = None
) -> list[dict]:
    label = f"{language or ''}{' ' + path if path else ''}".strip()
    newline = "" if file.endswith("\n") else "\n"
    content = EDIT_PROMPT.format(
        fence=FENCE, language=label, file=file, newline=newline, instruction=instruction.strip()
    )
    return [{"role": "user", "content": content}]


def is_fence(line: str) -> bool:
    return line.strip().startswith(FENCE)


class FileExtractor:
    """Incremental reply -> file content. States: "before" the file, "inside" it, "after" it."""

    def __init__(self, original: str) -> None:
        self.first_line = original.split("\n", 1)[0].strip()
        self.final_newline = original.endswith("\n")
        self.state = "before"
        self.prose = ""  # complete lines seen before the file started
        self.pending = ""  # the current partial line
        self.held = ""  # a line break held back until the file goes on (it may be the fence's)

    @property
    def done(self) -> bool:
        return self.state == "after"

    def feed(self, text: str) -> str:
        """File content that this piece of reply completes."""
        self.pending += text
        out = []
        while self.state != "after" and "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            out.append(self.take_line(line))
        if self.state == "inside" and not FENCE.startswith(self.pending.lstrip()[:3]):
            out.append(self.held + self.pending)  # a partial line that cannot become the closing fence
            self.held = self.pending = ""
        return "".join(out)

    def take_line(self, line: str) -> str:
        if self.state == "inside":
            if line.strip() == FENCE:
                self.state = "after"
                self.held = ""
                return ""
            return self.file_line(line)
        if is_fence(line):  # the opening fence: whatever came before it was prose
            self.state = "inside"
            return ""
        if not self.prose.strip() and line.strip() and line.strip() == self.first_line:
            self.state = "inside"  # bare code that starts like the original file
            return self.file_line(line)
        self.prose += line + "\n"
        return ""

    def file_line(self, line: str) -> str:
        """A complete line of the file; its line break waits for what follows when it may be the fence's."""
        if self.final_newline:
            return line + "\n"
        out, self.held = self.held + line, "\n"
        return out

    def finish(self) -> str:
        """The rest at the end of the reply: an unclosed file's last partial line, or a reply without fences
        (then the whole reply is the file)."""
        rest, self.pending = self.pending, ""
        if self.state == "inside" and rest.strip() == FENCE:
            self.state = "after"
        if self.state == "inside":
            return (self.held if rest else "") + rest
        if self.state == "before":
            return self.prose + rest
        return ""
