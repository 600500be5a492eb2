"""Conformance of both model backends to engine/backend.py's `Backend` protocol.

Every test runs against transformers (the tiny random target, fp32 on CPU, and the same in int8 as a CPU's
draft models run) and llama.cpp (the real 0.5B draft GGUF of the default pair): logits for the positions
asked, crop, re-decoding after a crop, reset, and the stop tokens the engine ends an answer with. Comparisons
of the *same* batch replayed use a tight tolerance on every backend; comparisons across different batch
shapes use each backend's own bound (`Subject.atol`): llama.cpp's batched kernels round differently from its
one-token path (docs/llamacpp.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from blazedit_client.errors import EngineError
from blazedit_server.engine import loading
from blazedit_server.engine.backend import Backend
from fixtures.tiny import TEST_DEVICE

SAME_BATCH_ATOL = 1e-4  # replaying the same tokens at the same positions: identical up to float noise
TEXT = '''def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    return [sum(values[i : i + window]) / window for i in range(len(values) - window + 1)]
'''


@dataclass(frozen=True)
class Subject:
    backend: Backend
    tokenizer: Any
    atol: float  # how far a position's logits may move when the batch around it is cut differently


def transformers_subject(request: pytest.FixtureRequest, device: str, dtype: str) -> Subject:
    from blazedit_server.engine.hf import HFBackend

    model = request.getfixturevalue("tiny_pair").target
    backend = HFBackend.load(model.hf_dir, device=device, dtype=dtype)
    # in int8 each row is quantized on its own and the int8 products sum exactly, so batches agree as tightly
    # as in fp32
    return Subject(backend, loading.load_tokenizer(model), atol=1e-4)


def llamacpp_subject(request: pytest.FixtureRequest) -> Subject:
    from blazedit_server.engine.llamacpp import LlamaCppBackend

    model = request.getfixturevalue("real_pair").draft
    backend = LlamaCppBackend.load(model.gguf, n_ctx=2048)
    request.addfinalizer(backend.close)
    # Measured on this text: up to 0.55 (0.5B) and 0.67 (1.5B) between one-token and batched passes, over
    # logits that span ~50.
    return Subject(backend, loading.load_tokenizer(model), atol=1.0)


@pytest.fixture(
    scope="module",
    params=["transformers", "int8", pytest.param("llamacpp", marks=pytest.mark.real_pair)],
)
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "llamacpp":
        return llamacpp_subject(request)
    if request.param == "int8":
        return transformers_subject(request, "cpu", "int8")
    return transformers_subject(request, TEST_DEVICE, "float32")


@pytest.fixture
def backend(subject: Subject) -> Backend:
    subject.backend.reset()
    return subject.backend


@pytest.fixture
def ids(subject: Subject) -> list[int]:
    return subject.tokenizer.encode(TEXT, add_special_tokens=False)


def decided(reference: torch.Tensor, margin: float) -> torch.Tensor:
    """Rows whose top token leads the runner-up by more than `margin`: there rounding cannot flip argmax."""
    top2 = reference.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1] > margin


def test_the_backend_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name in {"transformers", "llamacpp"}
    assert backend.n_cached == 0
    assert backend.vocab_size > 0 and backend.n_ctx > 0


def test_forward_returns_float32_logits_for_the_positions_asked(backend: Backend, ids: list[int]) -> None:
    logits = backend.forward(ids, logits_from=len(ids) - 3)
    assert logits.shape == (3, backend.vocab_size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert backend.n_cached == len(ids)


def test_logits_from_only_skips_rows(backend: Backend, ids: list[int]) -> None:
    full = backend.forward(ids)
    backend.reset()
    tail = backend.forward(ids, logits_from=10)
    torch.testing.assert_close(tail, full[10:], atol=SAME_BATCH_ATOL, rtol=0)


def test_one_token_at_a_time_matches_one_pass_within_the_backend_bound(
    subject: Subject, backend: Backend, ids: list[int]
) -> None:
    full = backend.forward(ids)
    backend.reset()
    backend.forward(ids[:1])
    stepwise = torch.cat([backend.forward([token]) for token in ids[1:]])
    torch.testing.assert_close(stepwise, full[1:], atol=subject.atol, rtol=0)
    sure = decided(full[1:], 2 * subject.atol)
    assert sure.sum() >= len(ids) // 4  # not a vacuous check: many positions are decided
    assert torch.equal(stepwise.argmax(-1)[sure], full[1:].argmax(-1)[sure])


def test_truncate_keeps_exactly_the_first_n_positions(backend: Backend, ids: list[int]) -> None:
    backend.forward(ids)
    backend.truncate(20)
    assert backend.n_cached == 20
    backend.truncate(20)
    assert backend.n_cached == 20
    backend.truncate(0)
    assert backend.n_cached == 0


def test_redecoding_after_a_crop_gives_the_same_logits(backend: Backend, ids: list[int]) -> None:
    prefix, rest = ids[:30], ids[30:40]
    backend.forward(prefix)
    reference = backend.forward(rest)
    backend.truncate(len(prefix))
    rejected_draft = list(reversed(ids[40:48]))  # tokens the target will reject, then crop away
    backend.forward(rejected_draft)
    backend.truncate(len(prefix))
    again = backend.forward(rest)
    torch.testing.assert_close(again, reference, atol=SAME_BATCH_ATOL, rtol=0)
    assert backend.n_cached == 40


def test_a_partial_crop_keeps_the_accepted_prefix(subject: Subject, backend: Backend, ids: list[int]) -> None:
    backend.forward(ids[:30])
    backend.forward(ids[30:40])
    backend.truncate(35)  # five of the ten verified tokens accepted
    after_crop = backend.forward(ids[35:40])
    backend.reset()
    backend.forward(ids[:35])
    reference = backend.forward(ids[35:40])
    # positions 30..34 entered the cache in a batch of ten there and of 35 here
    torch.testing.assert_close(after_crop, reference, atol=subject.atol, rtol=0)


def test_reset_starts_a_new_sequence(backend: Backend, ids: list[int]) -> None:
    first = backend.forward(ids[:25])
    backend.forward(ids[25:])
    backend.reset()
    assert backend.n_cached == 0
    torch.testing.assert_close(backend.forward(ids[:25]), first, atol=SAME_BATCH_ATOL, rtol=0)


def test_the_stop_tokens_are_model_tokens(subject: Subject, backend: Backend, ids: list[int]) -> None:
    """The engine ends an answer at the tokenizer's end tokens: the model must know and accept them."""
    stops = sorted(loading.eos_ids(subject.tokenizer))
    assert subject.tokenizer.convert_tokens_to_ids("<|im_end|>") in stops
    assert all(0 <= token < backend.vocab_size for token in stops)
    logits = backend.forward([*ids[:10], *stops])
    assert torch.isfinite(logits).all()
    assert backend.n_cached == 10 + len(stops)


def test_reuse_repeats_positions_where_the_backend_can_and_declines_clearly_where_not(
    backend: Backend, ids: list[int]
) -> None:
    backend.forward(ids[:30])
    if not backend.can_reuse:
        assert backend.name == "llamacpp"
        with pytest.raises(EngineError, match="cannot repeat"):
            backend.reuse(5, 10)
        assert backend.n_cached == 30
        return
    backend.reuse(5, 10)  # the draft model's catch-up on a copied run: then it reads on from there
    assert backend.n_cached == 40
    logits = backend.forward(ids[15:18])
    assert logits.shape == (3, backend.vocab_size) and torch.isfinite(logits).all()
    backend.truncate(32)  # crops through a repeated run like through any other
    assert backend.n_cached == 32
