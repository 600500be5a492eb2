"""The arguments of the bridge's commands, validated with a message that says which field is wrong.

`workspace/executeCommand` carries one JSON object per command: `blazedit.edit {uri, instruction, range?}`,
`blazedit.editFromComment {uri, range? | position?}`, `blazedit.cancel {uri?}`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from lsprotocol import types
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blazedit_lsp.instructions import TargetError


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Position(_Args):
    line: int = Field(ge=0)
    character: int = Field(ge=0)

    def lsp(self) -> types.Position:
        return types.Position(line=self.line, character=self.character)


class Range(_Args):
    start: Position
    end: Position

    def lsp(self) -> types.Range:
        return types.Range(start=self.start.lsp(), end=self.end.lsp())


class EditArguments(_Args):
    uri: str
    instruction: str
    range: Range | None = None


class CommentArguments(_Args):
    uri: str
    range: Range | None = None  # a selection holding the comment, or the cursor (an empty range)
    position: Position | None = None  # the cursor, for clients that send a position

    def selection(self) -> types.Range | None:
        if self.range is not None:
            return self.range.lsp()
        return (
            None if self.position is None else types.Range(start=self.position.lsp(), end=self.position.lsp())
        )


class CancelArguments(_Args):
    uri: str | None = None  # None: every running edit


Args = TypeVar("Args", bound=_Args)


def parse_arguments(model: type[Args], command: str, arguments: Any) -> Args:
    """The command's argument object, or TargetError naming each wrong field."""
    try:
        return model.model_validate({} if arguments is None else arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'argument'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise TargetError(f"{command} got bad arguments ({problems})") from exc
