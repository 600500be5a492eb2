"""End-to-end harness for the LSP bridge: a pytest-lsp client acting as an editor, against real daemons
(the fixtures that use it are in conftest.py).

- `Editor`: the editor side of the pytest-lsp client. It keeps each open document (text and version), applies
  edits with columns in the negotiated encoding (its own code, through Python's codecs, not the bridge's),
  answers `workspace/applyEdit` the way the emulated editor does
  (VS Code refuses an edit for a stale version with `applied: false`; Neovim skips it but answers
  `applied: true`, and sends its `didChange` after the answer), and types like a user (`editor.type`).
  Options of the real clients: `change_delay` holds each `didChange` back and sends the latest text once
  changes stop for that long (vscode-languageclient's 250 ms Delayer for Full sync, `VSCODE_CHANGE_DELAY`);
  `normalize_eol` turns the line breaks of inserted text into the document's (VS Code's
  `normalizesLineEndings`, Neovim with 'fileformat=dos', Zed).
- `ScriptedEngine`: the engine contract (Started, Step per line, Finished; cancel checked every step) with an
  output the test chooses, so that the real daemon (routes, worker, hunk tracker, WebSocket) streams known
  hunks. `scripted_daemon` serves it; `daemon` (tests/fixtures/daemon.py) serves the tiny model.
- `daemon_output(daemon, file, instruction)`: the daemon's own answer to the same input (`stream: false`).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest_lsp
from blazedit_client.errors import InvalidRequestError
from blazedit_client.lines import LINE_END
from blazedit_client.protocol import EditResponse, FinishReason, Stats, Strategy, Timings
from blazedit_server.engine.runner import Finished, Started, Step
from fixtures.daemon import Daemon
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER_COMMAND = [sys.executable, "-m", "blazedit_lsp"]

# pytest-lsp's captured client capabilities, and how that editor treats an edit for an older version
PROFILES = {
    "visual-studio-code": "reject",  # utf-16; applied: false
    "neovim@v0.11": "skip",  # utf-8 first; skips silently, applied: true, didChange after the answer
    "emacs": "reject",  # utf-32 first
}
# vscode-languageclient 10 sends Full-sync didChange through `new Delayer(250)`, flushed before its own
# requests and notifications but not before its answer to workspace/applyEdit
VSCODE_CHANGE_DELAY = 0.25


# --- the editor ------------------------------------------------------------------------------------------


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def editor_offset(text: str, position: types.Position, encoding: str) -> int:
    """String offset of an LSP position, computed independently of the bridge (LSP line ends, codecs)."""
    lines = _LINE.findall(text)
    if position.line >= len(lines):
        return len(text)
    start = sum(map(len, lines[: position.line]))
    content = lines[position.line].rstrip("\r\n")
    codec, width = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2), "utf-32": ("utf-32-le", 4)}[encoding]
    prefix = content.encode(codec)[: position.character * width].decode(codec)
    return start + len(prefix)


@dataclass
class Document:
    text: str
    version: int = 1


@dataclass
class Editor:
    client: LanguageClient
    stale: str = "reject"  # "reject" (VS Code) or "skip" (Neovim)
    encoding: str = "utf-16"
    documents: dict[str, Document] = field(default_factory=dict)
    apply_calls: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    before_apply: Callable[[Editor, types.ApplyWorkspaceEditParams], None] | None = None
    change_delay: float = 0.0
    normalize_eol: bool = False
    _held_changes: dict[str, asyncio.TimerHandle] = field(default_factory=dict, init=False, repr=False)

    def open(self, uri: str, text: str, language_id: str = "python") -> None:
        self.documents[uri] = Document(text)
        item = types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))

    def close(self, uri: str) -> None:
        self.flush_changes()
        del self.documents[uri]
        identifier = types.TextDocumentIdentifier(uri=uri)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=identifier))

    def text(self, uri: str) -> str:
        return self.documents[uri].text

    def type(self, uri: str, offset: int, text: str, delete: int = 0) -> None:
        """The user replaces `delete` characters at string offset `offset` by `text`."""
        source = self.text(uri)
        self._set(uri, source[:offset] + text + source[offset + delete :])
        self._send_change(uri)

    def apply_edit(self, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        self.apply_calls.append(params)
        if self.before_apply is not None:
            hook, self.before_apply = self.before_apply, None
            hook(self, params)
        for change in params.edit.document_changes or []:
            uri = change.text_document.uri
            if change.text_document.version != self.documents[uri].version:
                if self.stale == "reject":
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason="stale version")
                return types.ApplyWorkspaceEditResult(applied=True)  # Neovim: "Buffer newer than edits."
            self._apply(uri, change.edits)
        for uri, edits in (params.edit.changes or {}).items():  # unversioned: applied to whatever is there
            self._apply(uri, edits)
        return types.ApplyWorkspaceEditResult(applied=True)

    def _apply(self, uri: str, edits: list[types.TextEdit]) -> None:
        text = self.documents[uri].text
        eol = LINE_END.search(text)
        spans = [
            (
                editor_offset(text, e.range.start, self.encoding),
                editor_offset(text, e.range.end, self.encoding),
                LINE_END.sub(eol.group(), e.new_text) if self.normalize_eol and eol else e.new_text,
            )
            for e in edits
        ]
        # all edits refer to the same original text: apply from the end so earlier offsets stay valid
        for start, end, new_text in sorted(spans, key=lambda s: (s[0], s[1]), reverse=True):
            text = text[:start] + new_text + text[end:]
        self._set(uri, text)
        if self.stale == "skip":  # Neovim debounces didChange: it comes after the answer
            asyncio.get_running_loop().call_soon(self._send_change, uri)
        else:
            self._send_change(uri)

    def _set(self, uri: str, text: str) -> None:
        document = self.documents[uri]
        document.text = text
        document.version += 1

    def _send_change(self, uri: str) -> None:
        if self.change_delay:
            if held := self._held_changes.get(uri):
                held.cancel()
            loop = asyncio.get_running_loop()
            self._held_changes[uri] = loop.call_later(self.change_delay, self._send_latest, uri)
        else:
            self._send_latest(uri)

    def flush_changes(self) -> None:
        """Send the held didChange now, as VS Code does before each request or notification of its own."""
        for uri, held in list(self._held_changes.items()):
            held.cancel()
            self._send_latest(uri)

    def _send_latest(self, uri: str) -> None:
        self._held_changes.pop(uri, None)
        document = self.documents[uri]
        identifier = types.VersionedTextDocumentIdentifier(uri=uri, version=document.version)
        change = types.TextDocumentContentChangeWholeDocument(text=document.text)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(text_document=identifier, content_changes=[change])
        )


def make_editor_client() -> LanguageClient:
    client = pytest_lsp.make_test_lsp_client()
    client.editor = Editor(client)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def workspace_apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        return client.editor.apply_edit(params)

    return client


CONFIG = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_editor_client)


async def start_editor(
    client: LanguageClient,
    profile: str,
    options: dict,
    *,
    change_delay: float = 0.0,
    normalize_eol: bool = False,
) -> Editor:
    """Initialize the bridge with an editor's capabilities and these initialization options, the editor
    holding didChange back `change_delay` seconds and normalising inserted line breaks if asked."""
    name = "Neovim" if profile.startswith("neovim") else profile  # Neovim sends clientInfo.name "Neovim"
    params = types.InitializeParams(
        capabilities=client_capabilities(profile),
        client_info=types.ClientInfo(name=name),
        initialization_options=options,
    )
    result = await client.initialize_session(params)
    editor = client.editor
    editor.stale = PROFILES.get(profile, "reject")
    editor.encoding = str(result.capabilities.position_encoding or "utf-16")
    editor.change_delay, editor.normalize_eol = change_delay, normalize_eol
    return editor


def daemon_options(daemon: Daemon, **extra) -> dict:
    return {"daemonUrl": daemon.url, "apiKey": daemon.api_key, **extra}


async def execute(client: LanguageClient, command: str, arguments: dict) -> dict:
    client.editor.flush_changes()
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[arguments])
    )


# --- daemons -----------------------------------------------------------------------------------------------


@functools.cache
def daemon_output(
    daemon: Daemon, file: str, instruction: str, language: str | None = None, path: str | None = None
) -> EditResponse:
    """What the daemon answers for this input in one response; the bridge must end with the same file.
    (Greedy decoding is deterministic, so the answer is asked once per input.)"""
    body = {"file": file, "instruction": instruction, "stream": False, "language": language, "path": path}
    response = httpx.post(f"{daemon.url}/v1/edits", json=body, headers=daemon.headers, timeout=600)
    response.raise_for_status()
    return EditResponse.model_validate_json(response.content)


class ScriptedEngine:
    """`script[instruction]` is the new file (default: the file unchanged), emitted one line per step.

    With `hold_at = n` the n-th step waits until `release` is set or the daemon cancels the request;
    `started` records that a request reached it, `cancelled` that the daemon stopped one. `max_tokens` counts
    lines. With `ends_at = n` the answer ends after n lines, inside the file (finish reason `incomplete`).
    Instruction "refuse" fails validation.
    """

    model_name = "scripted"
    backend_name = "scripted"
    default_strategy = Strategy.regular
    n_ctx = 1 << 16

    def __init__(self) -> None:
        self.script: dict[str, str] = {}
        self.hold_at: int | None = None
        self.ends_at: int | None = None
        self.release = threading.Event()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    def edit(self, file, instruction, *, language=None, path=None, strategy=None, params=None, cancel=None):
        if instruction == "refuse":
            raise InvalidRequestError("the scripted engine refuses this instruction", param="instruction")
        self.started.set()
        limit = params.max_new_tokens if params is not None else None
        return self._steps(self.script.get(instruction, file), cancel or threading.Event(), limit)

    def _held(self, cancel: threading.Event) -> bool:
        """Wait for the test to release the step; True when the daemon cancelled meanwhile."""
        while not self.release.wait(0.02):
            if cancel.is_set():
                return True
        return False

    def _steps(self, output: str, cancel: threading.Event, limit: int | None) -> Iterator:
        yield Started(prompt_tokens=1)
        emitted, reason = [], FinishReason.stop
        for n, line in enumerate(output.splitlines(keepends=True)):
            if n == limit:  # one "token" per line
                reason = FinishReason.length
                break
            if n == self.ends_at:
                reason = FinishReason.incomplete
                break
            if (n == self.hold_at and self._held(cancel)) or cancel.is_set():
                self.cancelled.set()
                reason = FinishReason.cancelled
                break
            emitted.append(line)
            yield Step(token_ids=[n], text=line, drafted=0, accepted=0)
        text = "".join(emitted)
        yield Finished(reason, text, 1, len(emitted), Stats(generated_tokens=len(emitted)), Timings())
