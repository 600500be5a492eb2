"""Where the OpenAI routes find their prompt-lookup source when a request sends no `prediction`.

Editors rarely send OpenAI's `prediction`, but their prompts carry the code the answer will mostly repeat:
- Zed's inline assistant (assets/prompts/content_prompt.hbs) marks the section to rewrite with
  `<rewrite_this>...</rewrite_this>` (the prose around it mentions the empty tags too, so the last non-empty
  section wins) and marks the selections inside it with `<edit_here>`/`<insert_here>` tags;
- otherwise a chat message may quote the code in fenced blocks;
- Zed's edit predictions in the zeta format send an editable region between `<|editable_region_start|>`
  and `<|editable_region_end|>` (with a `<|user_cursor_is_here|>` marker) that the model rewrites, markers
  included.
"""

from __future__ import annotations

import re

_REWRITE_THIS = re.compile(r"<rewrite_this>\n?(.*?)\n?</rewrite_this>", re.DOTALL)
_SELECTION_TAGS = re.compile(r"</?edit_here>|<insert_here></insert_here>")
_FENCED = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.DOTALL | re.MULTILINE)
_EDITABLE_REGION = re.compile(r"<\|editable_region_start\|>.*?<\|editable_region_end\|>", re.DOTALL)
CURSOR_MARKER = "<|user_cursor_is_here|>"


def rewrite_section(text: str) -> str | None:
    sections = [s for s in _REWRITE_THIS.findall(text) if s.strip()]
    return _SELECTION_TAGS.sub("", sections[-1]) if sections else None


def fenced_code(text: str) -> str | None:
    blocks = [body for _, body in _FENCED.findall(text)]
    return "".join(blocks) or None


def chat_lookup_source(last_user_message: str) -> str | None:
    return rewrite_section(last_user_message) or fenced_code(last_user_message)


def editable_region(prompt: str) -> str | None:
    regions = _EDITABLE_REGION.findall(prompt)
    return regions[-1].replace(CURSOR_MARKER, "") if regions else None
