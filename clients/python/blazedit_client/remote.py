"""`blazedit edit FILE --server URL`: stream an edit from a running daemon, show its progress, print a diff.

Works over SSH or from any machine that can reach the daemon: the file's text and its name travel, the
daemon never reads a path. The request is the one the local `blazedit edit` makes, so both give the same
edit. The edited file is the concatenation of the `delta` texts; `hunk` events move the progress bar. The
file on disk is rewritten only with `--write`, only when the model finished on its own (`stop`), and only if
nothing saved the file while the edit ran (`write_edit`, which the local `blazedit edit --write` uses too).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from blazedit_client.errors import BlazeditError, InvalidRequestError
from blazedit_client.http import DEFAULT_URL, EditClient
from blazedit_client.protocol import DeltaEvent, DoneEvent, EditRequest, FinishReason, HunkEvent, Strategy


@dataclass
class RemoteEdit:
    original: str
    text: str
    done: DoneEvent


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that send `blazedit edit` to a daemon instead of loading models in this process."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help=f"stream the edit from a running daemon (e.g. {DEFAULT_URL}) instead of loading the models here",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("BLAZEDIT_API_KEY"),
        help="the daemon's API key (default: $BLAZEDIT_API_KEY); only with --server",
    )


def read_source(path: Path) -> str:
    """The file's text, or a clear error for a missing, unreadable or binary file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}", param="file") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{path} is not UTF-8 text", param="file") from exc


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines  {task.fields[tokens]} tokens  {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _rate(tokens: int, progress: Progress, task: int) -> str:
    elapsed = progress.tasks[task].elapsed or 0.0
    return f"{tokens / elapsed:.0f} tok/s" if elapsed > 0 else ""


def stream_remote_edit(client: EditClient, request: EditRequest, console: Console) -> RemoteEdit:
    """Run one edit on the daemon with a progress bar over the original file's lines."""
    original_lines = max(1, request.file.count("\n") + 1)
    pieces: list[str] = []
    tokens = 0
    with _progress(console) as progress:
        task = progress.add_task(request.path or "edit", total=original_lines, tokens=0, rate="")
        for event in client.stream_edit(request):
            if isinstance(event, DeltaEvent):
                pieces.append(event.text)
                tokens += len(event.token_ids)
                progress.update(task, tokens=tokens, rate=_rate(tokens, progress, task))
            elif isinstance(event, HunkEvent):
                progress.update(task, completed=min(event.old_end, original_lines))
            elif isinstance(event, DoneEvent):
                progress.update(task, completed=original_lines)
                return RemoteEdit(original=request.file, text="".join(pieces), done=event)
    raise BlazeditError("the daemon closed the stream before the edit was done")


def patch_lines(text: str) -> list[str]:
    """Lines as `patch` sees them, ended by "\\n" only (str.splitlines also splits at \\r, \\x1c, ...)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff that `patch -p1` applies exactly, with git's marker for a missing final newline. `path`
    is the file as the user named it, so that `patch -p1` finds it from where the command ran."""
    out = []
    for line in difflib.unified_diff(patch_lines(old), patch_lines(new), f"a/{path}", f"b/{path}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def print_diff(console: Console, diff: str) -> None:
    """The diff as it is when piped (ready for `patch`), coloured on a terminal."""
    if not console.is_terminal:
        console.file.write(diff)
        return
    for line in diff.rstrip("\n").split("\n"):
        style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
        console.print(Text(line, style=style), soft_wrap=True, highlight=False)


def print_summary(console: Console, done: DoneEvent) -> None:
    usage, timings = done.usage, done.timings
    console.print(
        f"{done.finish_reason.value}: {usage.completion_tokens} tokens in {timings.decode_s:.2f} s "
        f"({timings.decode_tokens_per_s:.0f} tok/s), {usage.accepted_prediction_tokens} copied from the "
        f"original, {done.stats.target_passes} target passes",
        highlight=False,
    )


def check_writable(path: Path) -> Path:
    """The file `--write` replaces: a symlink's target (the link stays a link). A read-only file is refused,
    as an editor refuses it, even for root; checked before the edit too, so a refusal costs no edit."""
    try:
        target = path.resolve(strict=True)
        mode = target.stat().st_mode
    except OSError as exc:
        raise InvalidRequestError(f"cannot write {path}: {exc.strerror}", param="file") from exc
    if not mode & 0o222 or not os.access(target, os.W_OK):
        raise InvalidRequestError(f"{path} is read-only; not writing it", param="file")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise InvalidRequestError(f"cannot write in {target.parent}: permission denied", param="file")
    return target


def write_edit(path: Path, original: str, text: str) -> None:
    """`--write`: replace the file with the edit, unless it changed on disk since the edit read it. Then it
    is left alone and the edit goes beside it, to FILE.blazedit (replaced if there), so neither is lost."""
    target = check_writable(path)
    try:
        unchanged = target.read_bytes() == original.encode("utf-8")  # read_source decoded these very bytes
        destination = target if unchanged else path.with_name(path.name + ".blazedit")
        write_atomically(destination, text, like=target.stat())
    except OSError as exc:
        raise BlazeditError(f"cannot write {path}: {exc.strerror}; it is unchanged") from exc
    if not unchanged:
        raise BlazeditError(
            f"{path} changed on disk while the edit ran: left it alone, the edit is in {destination}"
        )


def write_atomically(path: Path, text: str, *, like: os.stat_result) -> None:
    """Replace (or create) the file by one rename of a synced temporary file, so that it is never
    half-written; with the mode of `like` and, as far as this user may set them, its owner and group."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode("utf-8"))
            keep_owner(file.fileno(), like)
            os.fchmod(file.fileno(), stat.S_IMODE(like.st_mode))  # after chown, which clears setuid/setgid
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def keep_owner(fd: int, like: os.stat_result) -> None:
    """Root may give the file both; an owner, a group they belong to; anyone else keeps the new file's."""
    for uid in (like.st_uid, -1):
        try:
            os.fchown(fd, uid, like.st_gid)
            return
        except PermissionError:
            continue


def run_remote_edit(
    path: Path,
    instruction: str,
    *,
    server: str,
    api_key: str | None = None,
    write: bool = False,
    language: str | None = None,
    model: str | None = None,
    strategy: Strategy | None = None,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> int:
    """The terminal remote mode: stream, print the diff to stdout, optionally write the file; exit status."""
    file = read_source(path)
    if write:
        check_writable(path)
    request = EditRequest(
        file=file,
        instruction=instruction,
        language=language,
        path=str(path),  # as the local `blazedit edit` does, so both give the same edit
        model=model,
        strategy=strategy,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise next to the bar
    out, err = Console(), Console(stderr=True)
    with EditClient(server, api_key=api_key) as client:
        result = stream_remote_edit(client, request, err)
    print_diff(out, unified_diff(path.as_posix(), result.original, result.text))
    print_summary(err, result.done)
    if not write:
        return 0
    if result.done.finish_reason is not FinishReason.stop:
        err.print(
            f"not writing {path}: the edit ended with '{result.done.finish_reason.value}'", highlight=False
        )
        return 1
    write_edit(path, result.original, result.text)
    err.print(f"wrote {path}", highlight=False)
    return 0
