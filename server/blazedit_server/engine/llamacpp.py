"""The llama.cpp backend: one GGUF model and its KV cache behind the engine's `Backend` protocol.

It drives llama-cpp-python's low-level C API directly (no `Llama` object, no sampler): each `forward` fills
one preallocated `llama_batch` with the tokens at positions n_cached.., flags the positions whose logits the
engine asked for, runs `llama_decode`, and copies those rows out of `llama_get_logits`. Rollback of rejected
draft tokens is `llama_memory_seq_rm` from position n on. The GGUF is loaded as it is (quantized kernels, no
dequantisation); every model gets its own context, and both the one-token and the batched paths use all the
cores this process may run on.

llama.cpp's batched kernels round differently from its one-token path, so logits of a token verified inside a
k-token batch can differ in the last bits from decoding it alone: greedy speculation on this backend is not
bit-identical to plain decoding (docs/llamacpp.md measures how often it matters).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import llama_cpp
import numpy as np
import torch
from blazedit_client.errors import ContextLengthError, EngineError

log = logging.getLogger(__name__)

_SEQ = 0  # the single sequence every context holds
# KV cache length when the caller does not ask. llama.cpp zeroes the whole cache up front, so it is resident:
# 8192 positions cost 224 MiB (1.5B) + 96 MiB (0.5B) and fit an edit of a ~4000-token file (prompt + rewrite).
DEFAULT_N_CTX = 8192
DEFAULT_N_BATCH = 512  # tokens per llama_decode call; longer forwards (a prefill) are split

# llama.cpp logs every tensor at load through this logger; keep errors only.
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)


def available_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup CPU affinity, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0))


@contextmanager
def _interrupt_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives in the block and deliver it once the block is done.

    llama.cpp logs through llama-cpp-python's ctypes callback while it loads, and Python runs a pending signal
    handler inside that callback, where ctypes prints the KeyboardInterrupt and swallows it: the load, and the
    command, would go on as if never interrupted. Only the main thread may set a handler; a load on another
    thread (the daemon's lifespan) is not where Ctrl-C is delivered anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)  # runs the previous handler now: KeyboardInterrupt by default


def _load_model(gguf: Path) -> llama_cpp.llama_model_p:
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    # Read, not mmap: llama.cpp repacks most weights into a CPU-friendly layout, and with mmap the original
    # pages it read stay mapped too (~600 MB more resident memory for the 1.5B model).
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), params)
    if not model:
        raise EngineError(f"llama.cpp could not load the GGUF model {gguf}")
    return model


def _new_context(model, n_ctx: int, n_batch: int, n_threads: int) -> llama_cpp.llama_context_p:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = n_batch
    params.n_seq_max = 1
    params.n_threads = params.n_threads_batch = n_threads
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens")
    return ctx


def _free(model, ctx, batch) -> None:
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)


class _BatchView:
    """numpy views over a `llama_batch` for one sequence, so a forward fills it with slice assignments."""

    def __init__(self, batch: llama_cpp.llama_batch, size: int) -> None:
        self.token = np.ctypeslib.as_array(batch.token, shape=(size,))
        self.pos = np.ctypeslib.as_array(batch.pos, shape=(size,))
        self.logits = np.ctypeslib.as_array(batch.logits, shape=(size,))
        np.ctypeslib.as_array(batch.n_seq_id, shape=(size,))[:] = 1
        for i in range(size):
            batch.seq_id[i][0] = _SEQ

    def fill(self, tokens: np.ndarray, first_pos: int, first_output: int) -> None:
        n = len(tokens)
        self.token[:n] = tokens
        self.pos[:n] = np.arange(first_pos, first_pos + n)
        self.logits[:n] = np.arange(n) >= first_output


class _LogitsMemory:
    """Host memory for the logits a forward returns, reused while no part of the previous result is alive.

    The logits of a 64-token draft are a [65, 151936] float32 array, ~40 MB: more than glibc's largest mmap
    threshold (32 MB), so a fresh array is fresh pages the kernel must fault in and zero on every verification
    step (0.2-0.7 s each on the 2-core dev machine). The engine drops a step's logits before its next forward,
    so the same memory serves every step; a caller that keeps a result gets a new array next time.
    """

    def __init__(self, vocab_size: int) -> None:
        self._vocab_size = vocab_size
        self._allocate(0)

    def _allocate(self, n_rows: int) -> None:
        self._array = np.empty((n_rows, self._vocab_size), dtype=np.float32)
        # References to the array when nothing outside holds it (every view and tensor of it adds one).
        self._free_refcount = sys.getrefcount(self._array)

    def take(self, n_rows: int) -> np.ndarray:
        """[n_rows, vocab] float32 memory that no earlier result shares."""
        if sys.getrefcount(self._array) > self._free_refcount or len(self._array) < n_rows:
            self._allocate(n_rows)
        return self._array[:n_rows]


def _file_type(model) -> str:
    """The weights' quantization as llama.cpp describes the model ("qwen2 1B Q4_K - Medium" -> "Q4_K -
    Medium")."""
    description = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, description, len(description))
    return description.value.decode(errors="replace").split(" ", 2)[-1]


class LlamaCppBackend:
    """One GGUF model on llama.cpp (CPU), one sequence, position as the only cursor."""

    name = "llamacpp"
    can_reuse = False  # `reuse`: a cell of its KV cache has one position per sequence

    def __init__(
        self,
        gguf: Path | str,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = DEFAULT_N_BATCH,
    ) -> None:
        llama_cpp.llama_backend_init()
        model = _load_model(Path(gguf))
        self.n_ctx = min(n_ctx or DEFAULT_N_CTX, llama_cpp.llama_model_n_ctx_train(model))
        self.n_threads = n_threads or available_cores()
        ctx = _new_context(model, self.n_ctx, n_batch, self.n_threads)
        batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._close = weakref.finalize(self, _free, model, ctx, batch)
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._batch = batch
        self._view = _BatchView(batch, n_batch)
        self._n_batch = n_batch
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self.precision = f"GGUF {_file_type(model)}"
        self._logits = _LogitsMemory(self.vocab_size)
        self._n_cached = 0

    @classmethod
    def load(
        cls, gguf: Path | str, *, n_ctx: int | None = None, n_threads: int | None = None
    ) -> LlamaCppBackend:
        with _interrupt_held():
            backend = cls(gguf, n_ctx=n_ctx, n_threads=n_threads)
        log.info("loaded %s on llama.cpp (%d threads, context %d)", gguf, backend.n_threads, backend.n_ctx)
        return backend

    @property
    def n_cached(self) -> int:
        return self._n_cached

    def forward(self, tokens: Sequence[int], logits_from: int = 0) -> torch.Tensor:
        ids = np.asarray(tokens, dtype=np.int32)
        self._check_forward(ids, logits_from)
        rows = self._logits.take(len(ids) - logits_from)  # [len(ids) - logits_from, vocab]
        filled = 0
        for start in range(0, len(ids), self._n_batch):
            n_rows = self._decode_chunk(ids[start : start + self._n_batch], logits_from - start)
            self._copy_logits(rows[filled : filled + n_rows])
            filled += n_rows
        return torch.from_numpy(rows)

    def truncate(self, n: int) -> None:
        if not 0 <= n <= self._n_cached:
            raise ValueError(f"cannot keep {n} positions of a cache holding {self._n_cached}")
        if not llama_cpp.llama_memory_seq_rm(self._memory, _SEQ, n, -1):
            raise EngineError(f"llama.cpp could not drop the cached positions from {n} on")
        self._n_cached = n

    def reuse(self, start: int, count: int) -> None:
        raise EngineError("llama.cpp's cache cannot repeat positions (one position per cell and sequence)")

    def reset(self) -> None:
        # data=False: forget the cells without zeroing the whole KV buffer (they are overwritten on reuse).
        llama_cpp.llama_memory_clear(self._memory, False)
        self._n_cached = 0

    def close(self) -> None:
        """Free the model and its context now rather than at garbage collection."""
        self._close()

    def _check_forward(self, ids: np.ndarray, logits_from: int) -> None:
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError("forward needs a non-empty sequence of token ids")
        if not 0 <= logits_from <= len(ids):
            raise ValueError(f"logits_from={logits_from} is outside 0..{len(ids)}")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}")
        if self._n_cached + len(ids) > self.n_ctx:
            raise ContextLengthError(
                f"{self._n_cached} cached + {len(ids)} new tokens exceed the context of {self.n_ctx} tokens"
            )

    def _decode_chunk(self, ids: np.ndarray, first_output: int) -> int:
        """Decode one batch-sized run of tokens, logits from index `first_output` on; returns their count."""
        self._view.fill(ids, self._n_cached, first_output)
        self._batch.n_tokens = len(ids)
        status = llama_cpp.llama_decode(self._ctx, self._batch)
        if status != 0:
            # A failed decode may leave part of the batch in the memory: drop it so the cursor stays true.
            llama_cpp.llama_memory_seq_rm(self._memory, _SEQ, self._n_cached, -1)
            raise EngineError(f"llama_decode failed with status {status}")
        self._n_cached += len(ids)
        return max(len(ids) - max(first_output, 0), 0)

    def _copy_logits(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        # llama.cpp stores the flagged rows contiguously, in batch order, in a buffer the next decode reuses.
        pointer = ctypes.cast(llama_cpp.llama_get_logits(self._ctx), ctypes.POINTER(ctypes.c_float))
        np.copyto(rows, np.ctypeslib.as_array(pointer, shape=rows.shape))
