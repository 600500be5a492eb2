"""One edit in flight on one document: the daemon's event stream -> `workspace/applyEdit`, progress, cancel.

Hunks arrive in the lines of the text sent to the daemon; `document_hunk` puts them in the lines the document
had when the command started, and the hunks already applied shift them into `ours` (see blazedit_lsp.edits).
Each batch is rebased on the document as it is now and sent with that version. The editor's answer is not
trusted (Zed and Neovim answer `applied: true` even when they skipped the edit): the edit counts once the
document, updated by `didChange`, holds it; otherwise the batch is rebased on the editor's next text and sent
again.

Apply modes: `stream` sends each hunk as it arrives (the comment line of `editFromComment` goes with the first
hunk past it); `final` sends all of them in one edit when the daemon is done (one undo step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

import attrs
from blazedit_client.errors import AuthenticationError, BlazeditError
from blazedit_client.lines import file_lines
from blazedit_client.protocol import DeltaEvent, DoneEvent, EditRequest, FinishReason, HunkEvent
from blazedit_client.ws import EditSocket
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from blazedit_lsp.edits import (
    Hunk,
    Rebase,
    Replacement,
    hunk_span,
    line_break,
    output_percent,
    rebase,
    splice,
    text_edits,
    unmatched_lines,
    with_line_break,
)
from blazedit_lsp.instructions import EditTarget, comment_removal, document_hunk
from blazedit_lsp.options import Options

logger = logging.getLogger(__name__)

# Edits that ended before the model reached the end of the file: what was settled is applied, the rest stays.
PARTIAL = {
    FinishReason.length: "the model reached its token limit: only the changes it completed were applied",
    FinishReason.incomplete: (
        "the model's answer did not hold the whole file (it ended early, or held no code): the rest of the "
        "file was left as it was"
    ),
}

APPLY_ATTEMPTS = 3  # a batch the editor refused (stale version) is rebased and sent again this often
# seconds to wait for the didChange that shows an applied edit (Neovim debounces it), or after a refused one
# for the didChange that shows the newer text it was refused for
SETTLE_TIMEOUT = 3.0


class DocumentClosed(Exception):
    """The document was closed while its edit ran."""


@attrs.define
class EditResult:
    """What `blazedit.edit` / `blazedit.editFromComment` answer once the edit is over."""

    status: str  # "done", "partial" (max_tokens reached), "cancelled", "error", "busy"
    applied: int  # hunks now in the document
    skipped: int  # hunks not applied because the user edited their lines, or the editor refused them
    message: str  # what happened, in words ("" when all went well)


def _request_path(uri: str) -> str:
    return PurePosixPath(unquote(urlparse(uri).path)).name


class EditSession:
    def __init__(self, ls: LanguageServer, uri: str, target: EditTarget) -> None:
        self.ls, self.uri, self.target = ls, uri, target
        self.options: Options  # the settings `run` is given
        self.encoding = str(ls.workspace.position_encoding or types.PositionEncodingKind.Utf16)
        document = self._document()
        self.original = document.source
        self.ours = self.original  # the document as blazedit alone would have it
        lines = file_lines(self.original)
        self.base = "".join(
            line
            for n, line in enumerate(lines[target.start_line : target.end_line], start=target.start_line)
            if n != target.comment_line
        )
        self._language = document.language_id
        self._line_break = line_break(self.original)  # the model writes "\n"; a CRLF document keeps CRLF
        self._applied: list[Replacement] = []  # offsets in the original document
        self._pending: list[Hunk] = []  # document lines, not sent yet
        self._comment = comment_removal(target)  # the comment line's removal, until it is sent
        self._received: list[Hunk] = []  # daemon lines, for the progress estimate
        self._output = ""
        self._percent = 0
        self._skipped = 0
        self._changed = asyncio.Event()
        self._work: asyncio.Task[FinishReason] | None = None
        self._cancel_reason: str | None = None
        self.token: str | None = None  # the work-done progress token, when the editor shows progress

    # --- called by the server ---------------------------------------------------------------------------

    async def run(self, options: Options, socket: EditSocket) -> EditResult:
        """Run the edit to its end; errors become a message to the user and an `error` result."""
        self.options = options
        self.token = await self._begin_progress()
        self._work = asyncio.create_task(self._stream(socket))
        if self._cancel_reason is not None:  # cancelled before the edit could start
            self._work.cancel()
        result = EditResult("cancelled", 0, 0, "the editor cancelled the command")
        try:
            result = await self._outcome(self._work)
            return result
        finally:  # also when the editor cancels the command request itself
            if not self._work.done():
                self._work.cancel()
                await asyncio.gather(self._work, return_exceptions=True)
            self._end_progress(result)

    async def _outcome(self, work: asyncio.Task[FinishReason]) -> EditResult:
        try:
            return self._result(await work)
        except asyncio.CancelledError:
            if self._cancel_reason is None:
                raise
            return EditResult("cancelled", self._applied_count(), self._skipped, self._cancel_reason)
        except DocumentClosed:
            return EditResult("cancelled", self._applied_count(), self._skipped, "the document was closed")
        except BlazeditError as exc:
            message = exc.message
            if isinstance(exc, AuthenticationError):
                message += " (the daemon wants an API key: set `apiKey` in the settings, or BLAZEDIT_API_KEY)"
            self._show(types.MessageType.Error, f"blazedit: {message}")
            return EditResult("error", self._applied_count(), self._skipped, message)

    def cancel(self, reason: str) -> None:
        """Stop the edit (the daemon request is cancelled); what was applied stays."""
        self._cancel_reason = reason
        if self._work is not None:
            self._work.cancel()

    def document_changed(self) -> None:
        self._changed.set()

    # --- the daemon stream ---------------------------------------------------------------------------------

    def _request(self) -> EditRequest:
        opts = self.options
        return EditRequest(
            file=self.base,
            instruction=self.target.instruction,
            language=self._language or None,
            path=_request_path(self.uri) or None,
            model=opts.model,
            strategy=opts.strategy,
            max_tokens=opts.max_tokens,
        )

    async def _stream(self, socket: EditSocket) -> FinishReason:
        finish = FinishReason.stop
        async with contextlib.aclosing(socket.stream_edit(self._request())) as events:
            async for event in events:
                if isinstance(event, DeltaEvent):
                    self._on_delta(event)
                elif isinstance(event, HunkEvent):
                    await self._on_hunk(event)
                elif isinstance(event, DoneEvent):
                    finish = event.finish_reason
        if finish is not FinishReason.cancelled:
            await self._flush()
        return finish

    def _on_delta(self, event: DeltaEvent) -> None:
        self._output += event.text
        self._report(output_percent(len(file_lines(self.base)), self._output, self._received))

    async def _on_hunk(self, event: HunkEvent) -> None:
        hunk = Hunk(event.old_start, event.old_end, with_line_break(event.new_text, self._line_break))
        self._received.append(hunk)
        self._pending.append(document_hunk(hunk, self.target))
        if self.options.apply_mode == "stream":
            await self._flush(last=False)

    async def _flush(self, *, last: bool = True) -> None:
        """Send the pending hunks as one edit, with the comment line's removal once they reach past it
        (unless one of them rewrites that line anyway)."""
        batch, self._pending = self._pending, []
        comment = self._comment
        if comment is not None and (last or any(h.old_end > comment.old_start for h in batch)):
            self._comment = None
            if not any(h.old_start <= comment.old_start < h.old_end for h in batch):
                batch.append(comment)
        if batch:
            await self._apply(sorted(batch, key=lambda h: (h.old_start, h.old_end)))

    # --- applying ----------------------------------------------------------------------------------------

    def _in_ours(self, change: Replacement) -> Replacement:
        """A change to the original document -> the same change to `ours` (after those applied before it)."""
        shift = sum(len(a.new_text) - (a.end - a.start) for a in self._applied if a.end <= change.start)
        return Replacement(change.start + shift, change.end + shift, change.new_text)

    async def _apply(self, batch: list[Hunk]) -> None:
        """Apply hunks (lines of the original document) to the document as it is now."""
        in_ours = {self._in_ours(hunk_span(self.original, hunk)): hunk for hunk in batch}
        for _ in range(APPLY_ATTEMPTS):
            document = self._document()
            sent = document.version  # pygls updates `document` in place at each didChange
            plan = rebase(self.ours, document.source, in_ours)
            expected = splice(self.ours, plan.applied)
            if not plan.replacements or await self._send(document, plan, expected):
                self.ours = expected
                self._applied += [hunk_span(self.original, in_ours[change]) for change in plan.applied]
                self._note_conflicts([in_ours[change] for change in plan.conflicts])
                return
            # Refused or skipped for a stale version: the editor has a newer text that the bridge has not
            # seen yet (VS Code sends didChange 250 ms late). The next attempt rebases on it, once it comes.
            if not await self._newer_than(sent):  # no newer text came: it refused the edit itself
                break
        self._note_conflicts(batch, why="the editor did not apply them")

    async def _send(self, document: TextDocument, plan: Rebase, expected: str) -> bool:
        """Send the plan as one edit on this version of the document; whether the document now holds it."""
        edits = text_edits(document.source, plan.replacements, self.encoding)
        params = types.ApplyWorkspaceEditParams(edit=self._workspace_edit(document, edits), label="blazedit")
        try:
            applied = (await self.ls.workspace_apply_edit_async(params)).applied
        except JsonRpcException as exc:  # the editor failed the request: the same as refusing the edit
            logger.warning("workspace/applyEdit failed: %s", exc)
            applied = False
        if applied:  # Zed and Neovim say so even when they skipped the edit: their didChange tells
            return await self._wait_for(lambda: self._holds(expected))
        return self._holds(expected)

    def _holds(self, expected: str) -> bool:
        """Whether the document matches `expected` better than `ours` (the user may have typed meanwhile)."""
        actual = self._document().source
        return unmatched_lines(expected, actual) < unmatched_lines(self.ours, actual)

    def _workspace_edit(self, document: TextDocument, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
        if not self.ls.versioned_edits:
            return types.WorkspaceEdit(changes={self.uri: edits})
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=self.uri, version=document.version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=edits)]
        )

    async def _newer_than(self, version: int | None) -> bool:
        """Whether the editor sends a text newer than `version` within SETTLE_TIMEOUT."""
        return await self._wait_for(lambda: self._document().version != version)

    async def _wait_for(self, ready: Callable[[], bool]) -> bool:
        """Wait until `ready()`, checked at each didChange, for SETTLE_TIMEOUT at most; `ready()` then."""
        deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT
        while True:
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if (done := ready()) or remaining <= 0:
                return done
            # asyncio.timeout, not wait_for, which can drop a cancel (see blazedit_client.ws)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    def _note_conflicts(self, hunks: list[Hunk], why: str = "you edited those lines meanwhile") -> None:
        hunks = [
            h for h in hunks if h != comment_removal(self.target)
        ]  # the user is told about real changes only
        if not hunks:
            return
        self._skipped += len(hunks)
        where = ", ".join(f"{h.old_start + 1}-{max(h.old_end, h.old_start + 1)}" for h in hunks)
        self._show(types.MessageType.Warning, f"blazedit skipped its change to lines {where}: {why}")

    def _applied_count(self) -> int:
        """The daemon's hunks in the document (the comment line's removal is not one of them)."""
        removal = comment_removal(self.target)
        removal_span = hunk_span(self.original, removal) if removal else None
        return sum(change != removal_span for change in self._applied)

    def _document(self) -> TextDocument:
        if self.uri not in self.ls.workspace.text_documents:
            raise DocumentClosed(self.uri)
        return self.ls.workspace.get_text_document(self.uri)

    # --- talking to the user -----------------------------------------------------------------------------

    def _show(self, kind: types.MessageType, message: str) -> None:
        logger.info("%s", message)
        self.ls.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def _result(self, finish: FinishReason) -> EditResult:
        applied = self._applied_count()
        if finish in PARTIAL:
            message = PARTIAL[finish]
            self._show(types.MessageType.Warning, f"blazedit: {message}")
            return EditResult("partial", applied, self._skipped, message)
        if finish is FinishReason.cancelled:
            return EditResult("cancelled", applied, self._skipped, "the daemon cancelled the edit")
        return EditResult("done", applied, self._skipped, "")

    async def _begin_progress(self) -> str | None:
        window = self.ls.client_capabilities.window
        if not (window and window.work_done_progress):
            return None
        token = f"blazedit-{uuid.uuid4().hex}"
        try:
            await self.ls.work_done_progress.create_async(token)
        except JsonRpcException as exc:  # no progress indicator, but the edit itself can go on
            logger.warning("window/workDoneProgress/create failed: %s", exc)
            return None
        self.ls.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="blazedit", message=self.target.instruction, cancellable=True, percentage=0
            ),
        )
        return token

    def _report(self, percent: int) -> None:
        if self.token is None or percent <= self._percent:
            return
        self._percent = percent
        self.ls.work_done_progress.report(self.token, types.WorkDoneProgressReport(percentage=percent))

    def _end_progress(self, result: EditResult) -> None:
        if self.token is None:
            return
        message = f"{result.status}: {result.applied} change(s) applied, {result.skipped} skipped"
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
