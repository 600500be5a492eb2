"""blazedit's language server: `workspace/executeCommand` for `blazedit.edit`, `blazedit.editFromComment` and
`blazedit.cancel`, `textDocument/codeAction`, and the document sync and progress messages they rely on.

Handlers are thin: what to edit comes from blazedit_lsp.instructions, the edit itself runs in
blazedit_lsp.session (one per document), settings come from blazedit_lsp.options. Documents are synced in
full so that the server's copy is exactly the editor's (no line-splitting differences). Every failure is
shown with `window/showMessage` and answered with an `error` result; the document is then left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from blazedit_client.lines import file_lines
from blazedit_client.ws import EditSocket
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from blazedit_lsp import __version__
from blazedit_lsp.arguments import CancelArguments, CommentArguments, EditArguments, parse_arguments
from blazedit_lsp.instructions import (
    EditTarget,
    TargetError,
    comment_target,
    find_comment,
    instruction_target,
)
from blazedit_lsp.options import Options, load_options
from blazedit_lsp.session import EditResult, EditSession

logger = logging.getLogger(__name__)

EDIT, EDIT_FROM_COMMENT, CANCEL = "blazedit.edit", "blazedit.editFromComment", "blazedit.cancel"


class BlazeditLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("blazedit-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.initialization_options: object = None
        self.options = Options()
        self.versioned_edits = False  # whether edits can name the document version they were computed for
        self.sessions: dict[str, EditSession] = {}
        self._sockets: dict[tuple, EditSocket] = {}
        self._reported: set[str] = set()

    def show(self, kind: types.MessageType, message: str) -> None:
        logger.info("%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def apply_options(self, configuration: object = None) -> Options:
        """Settle the options from the initialization options and the workspace configuration, reporting
        invalid settings (they fall back to their defaults)."""
        self.options, problems = load_options(self.initialization_options, configuration)
        for problem in problems:
            if problem not in self._reported:  # the settings are read at every command: say it once
                self._reported.add(problem)
                self.show(types.MessageType.Warning, problem)
        return self.options

    async def refresh_options(self) -> Options:
        """The options with the editor's current `blazedit` configuration section, when it offers one."""
        workspace = self.client_capabilities.workspace
        if not (workspace and workspace.configuration):
            return self.apply_options()
        params = types.ConfigurationParams(items=[types.ConfigurationItem(section="blazedit")])
        try:
            [configuration] = await self.workspace_configuration_async(params)
        except Exception:  # an editor that fails this request still gets an edit, with the other settings
            logger.exception("workspace/configuration failed")
            configuration = None
        return self.apply_options(configuration)

    def socket(self, options: Options) -> EditSocket:
        """The WebSocket client for these settings (reused; it reconnects when the daemon restarts)."""
        key = (options.daemon_url, options.api_key, options.connect_timeout, options.event_timeout)
        if key not in self._sockets:
            self._sockets[key] = EditSocket(
                options.daemon_url,
                api_key=options.api_key,
                open_timeout=options.connect_timeout,
                event_timeout=options.event_timeout,
            )
        return self._sockets[key]

    def lines(self, uri: str) -> list[str]:
        if uri not in self.workspace.text_documents:
            raise TargetError(f"{uri} is not open in the editor: blazedit edits open documents only")
        return file_lines(self.workspace.get_text_document(uri).source)

    async def run_edit(self, uri: str, target: EditTarget) -> EditResult:
        if not self.client_capabilities.workspace or not self.client_capabilities.workspace.apply_edit:
            return self.fail("this editor does not accept edits from a language server (workspace/applyEdit)")
        if uri in self.sessions:
            return self.fail("an edit is already running on this document; cancel it first", status="busy")
        # registered before the first await, so that a `blazedit.cancel` sent meanwhile finds the edit
        session = self.sessions[uri] = EditSession(self, uri, target)
        try:
            options = await self.refresh_options()
            return await session.run(options, self.socket(options))
        finally:
            del self.sessions[uri]

    def fail(self, message: str, status: str = "error") -> EditResult:
        self.show(types.MessageType.Error, f"blazedit: {message}")
        return EditResult(status, 0, 0, message)


SERVER = BlazeditLanguageServer()


@SERVER.feature(types.INITIALIZE)
def initialize(ls: BlazeditLanguageServer, params: types.InitializeParams) -> None:
    ls.initialization_options = params.initialization_options
    ls.versioned_edits = supports_versioned_edits(params)
    ls.apply_options()


def supports_versioned_edits(params: types.InitializeParams) -> bool:
    """Versioned `TextDocumentEdit`s let the editor refuse an edit made for an older text. Neovim applies
    them (and checks the version) without advertising `documentChanges`, so it gets them too."""
    workspace = params.capabilities.workspace
    advertised = bool(workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes)
    return advertised or (params.client_info is not None and params.client_info.name == "Neovim")


@SERVER.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def workspace_did_change_configuration(
    ls: BlazeditLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    await ls.refresh_options()


@SERVER.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def text_document_did_change(ls: BlazeditLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    if (session := ls.sessions.get(params.text_document.uri)) is not None:
        session.document_changed()


@SERVER.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def text_document_did_close(ls: BlazeditLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    if (session := ls.sessions.get(params.text_document.uri)) is not None:
        session.cancel("the document was closed")


@SERVER.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
def window_work_done_progress_cancel(
    ls: BlazeditLanguageServer, params: types.WorkDoneProgressCancelParams
) -> None:
    for session in list(ls.sessions.values()):
        if session.token == params.token:
            session.cancel("cancelled from the editor")


@SERVER.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
)
def text_document_code_action(
    ls: BlazeditLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction]:
    """The comment instruction (when a `blazedit:` comment is in range), and the presets for a selection."""
    uri, selection = params.text_document.uri, params.range
    try:
        lines = ls.lines(uri)
    except TargetError:
        return []
    actions = []
    if find_comment(lines, selection) is not None:
        arguments = {"uri": uri, "range": _range_json(selection)}
        actions.append(
            _action("Blazedit: edit with the instruction in this comment", EDIT_FROM_COMMENT, arguments)
        )
    if selection.start != selection.end:
        actions += [
            _action(
                f"Blazedit: {preset}",
                EDIT,
                {"uri": uri, "instruction": preset, "range": _range_json(selection)},
            )
            for preset in ls.options.all_presets()
        ]
    return actions


def _range_json(selection: types.Range) -> dict:
    return {
        "start": {"line": selection.start.line, "character": selection.start.character},
        "end": {"line": selection.end.line, "character": selection.end.character},
    }


def _action(title: str, command: str, arguments: dict) -> types.CodeAction:
    return types.CodeAction(
        title=title,
        kind=types.CodeActionKind.RefactorRewrite,
        command=types.Command(title=title, command=command, arguments=[arguments]),
    )


@SERVER.command(EDIT)
async def edit(ls: BlazeditLanguageServer, arguments: Any = None) -> EditResult:
    """`blazedit.edit {uri, instruction, range?}`: rewrite the document (or the selected lines)."""
    try:
        args = parse_arguments(EditArguments, EDIT, arguments)
        selection = args.range.lsp() if args.range else None
        target = instruction_target(args.instruction, ls.lines(args.uri), selection)
    except TargetError as exc:
        return ls.fail(str(exc))
    return await ls.run_edit(args.uri, target)


@SERVER.command(EDIT_FROM_COMMENT)
async def edit_from_comment(ls: BlazeditLanguageServer, arguments: Any = None) -> EditResult:
    """`blazedit.editFromComment {uri, range? | position?}`: the instruction is a `blazedit:` comment."""
    try:
        args = parse_arguments(CommentArguments, EDIT_FROM_COMMENT, arguments)
        target = comment_target(ls.lines(args.uri), args.selection())
    except TargetError as exc:
        return ls.fail(str(exc))
    return await ls.run_edit(args.uri, target)


@SERVER.command(CANCEL)
def cancel(ls: BlazeditLanguageServer, arguments: Any = None) -> int:
    """`blazedit.cancel {uri?}`: stop the edit on that document (without a uri: all); how many stopped."""
    try:
        uri = parse_arguments(CancelArguments, CANCEL, arguments).uri
    except TargetError as exc:
        ls.fail(str(exc))
        return 0
    sessions = [s for u, s in ls.sessions.items() if uri is None or u == uri]
    for session in sessions:
        session.cancel("cancelled")
    return len(sessions)
