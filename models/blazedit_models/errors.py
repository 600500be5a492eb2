"""Errors of the model tooling, in the product's one hierarchy (`blazedit_client.errors`)."""

from __future__ import annotations

from blazedit_client.errors import BlazeditError, InvalidRequestError


class PairMismatchError(InvalidRequestError):
    """The target and draft models do not share a tokenizer: the draft's tokens mean nothing to the target."""

    error_type = "pair_mismatch"


class FetchError(BlazeditError):
    """Fetching, verifying or converting model files failed; the cache holds nothing half-written."""

    error_type = "fetch_error"
