"""What the llama.cpp backend adds to the shared conformance suite, on the real 0.5B draft GGUF: its
vocabulary is the HF tokenizer's, a greedy chat answer ends with the chat end token, bad calls are refused
without touching the cache, long runs are split over batches, and threads follow the CPU affinity."""

from __future__ import annotations

import os

import llama_cpp
import pytest
import torch
from blazedit_client.errors import ContextLengthError
from blazedit_server.engine import loading
from blazedit_server.engine.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.real_pair

PROBE = 'def naïve(s: str) -> str:\n    return s.strip()  # 漢字 → "ok" <|im_end|>\n\tx = [1, 2]\n'
N_CTX = 256


@pytest.fixture(scope="module")
def draft_model(real_pair):
    return real_pair.draft


@pytest.fixture(scope="module")
def tokenizer(draft_model):
    return loading.load_tokenizer(draft_model)


@pytest.fixture(scope="module")
def backend(draft_model):
    backend = LlamaCppBackend.load(draft_model.gguf, n_ctx=N_CTX)
    yield backend
    backend.close()


@pytest.fixture
def fresh(backend):
    backend.reset()
    return backend


def test_the_gguf_vocabulary_is_the_hf_tokenizer(draft_model, tokenizer, backend):
    """The engine tokenizes with the HF tokenizer and feeds the ids to llama.cpp: they must mean the same."""
    vocab_only = llama_cpp.Llama(model_path=str(draft_model.gguf), vocab_only=True, verbose=False)
    gguf_ids = vocab_only.tokenize(PROBE.encode(), add_bos=False, special=True)
    assert gguf_ids == tokenizer.encode(PROBE, add_special_tokens=False)
    assert backend.vocab_size >= len(tokenizer)


def test_a_greedy_chat_answer_ends_with_the_chat_end_token(tokenizer, fresh):
    messages = [{"role": "user", "content": "Reply with exactly the word: pong"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    token = int(fresh.forward(ids, logits_from=len(ids) - 1)[0].argmax())
    answer = []
    while token not in loading.eos_ids(tokenizer) and len(answer) < 16:
        answer.append(token)
        token = int(fresh.forward([token])[0].argmax())
    assert token == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert "pong" in tokenizer.decode(answer).lower()


@pytest.mark.parametrize(
    ("tokens", "logits_from"),
    [([], 0), ([1, 2], 3), ([1, 2], -1), ([1, -5], 0), ([1, 10**7], 0), ([[1, 2]], 0)],
    ids=["empty", "logits-past-end", "negative-logits-from", "negative-id", "id-past-vocab", "nested"],
)
def test_bad_forward_calls_are_refused_and_leave_the_cache_alone(fresh, tokens, logits_from):
    fresh.forward([1, 2, 3])
    with pytest.raises(ValueError):
        fresh.forward(tokens, logits_from)
    assert fresh.n_cached == 3


def test_a_forward_past_the_context_is_a_context_error(fresh):
    fresh.forward([1] * (N_CTX - 2))
    with pytest.raises(ContextLengthError):
        fresh.forward([1, 2, 3])
    assert fresh.n_cached == N_CTX - 2
    assert fresh.forward([1, 2], logits_from=1).shape == (1, fresh.vocab_size)  # exactly full is fine


@pytest.mark.parametrize("n", [-1, 4])
def test_truncate_refuses_positions_it_does_not_hold(fresh, n):
    fresh.forward([1, 2, 3])
    with pytest.raises(ValueError):
        fresh.truncate(n)
    assert fresh.n_cached == 3


def test_asking_for_no_rows_still_fills_the_cache(fresh, tokenizer):
    ids = tokenizer.encode(PROBE, add_special_tokens=False)
    assert fresh.forward(ids, logits_from=len(ids)).shape == (0, fresh.vocab_size)
    assert fresh.n_cached == len(ids)


def test_a_run_longer_than_a_batch_is_split(draft_model, tokenizer, backend):
    """A prefill longer than n_batch goes through several llama_decode calls; the rows asked still come back,
    in order, close to one single batch (batch boundaries round like any other batch cut)."""
    ids = tokenizer.encode(PROBE * 4, add_special_tokens=False)
    backend.reset()
    whole = backend.forward(ids)
    small = LlamaCppBackend(draft_model.gguf, n_ctx=N_CTX, n_batch=16)
    try:
        split = small.forward(ids, logits_from=5)
        assert small.n_cached == len(ids) > 3 * 16
        torch.testing.assert_close(split, whole[5:], atol=1.0, rtol=0)
        assert (split.argmax(-1) == whole[5:].argmax(-1)).float().mean() > 0.9
    finally:
        small.close()


def test_threads_follow_the_cpu_affinity(backend):
    assert backend.n_threads == len(os.sched_getaffinity(0))


def test_close_is_idempotent(draft_model):
    backend = LlamaCppBackend(draft_model.gguf, n_ctx=64)
    backend.close()
    backend.close()


def test_a_kept_result_is_never_overwritten_by_a_later_forward(fresh, tokenizer):
    ids = tokenizer.encode(PROBE, add_special_tokens=False)
    first = fresh.forward(ids)
    row = first[-1]  # a view keeps the memory in use too
    expected = row.clone()
    del first
    fresh.truncate(1)
    fresh.forward(ids[1:])
    assert torch.equal(row, expected)


def test_dropped_results_leave_their_memory_to_the_next_forward(fresh, tokenizer):
    """A verification step's ~40 MB of logits is not fresh memory each time (see _LogitsMemory)."""
    ids = tokenizer.encode(PROBE, add_special_tokens=False)
    address = fresh.forward(ids).data_ptr()
    fresh.truncate(1)
    assert fresh.forward(ids[1:]).data_ptr() == address
