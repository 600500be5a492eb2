"""Reference decoders the engine is measured against, fed the engine's own prompt ids and stopped where the
engine stops (the edited file is complete, an end token, or the token cap):

- transformers' `generate` with `prompt_lookup_num_tokens=10` ("hf-pld") and with `assistant_model=<draft>`
  ("hf-assisted"), greedy, on the engine's own transformers models;
- llama.cpp plain decoding ("llamacpp-plain") and llama-cpp-python's prompt lookup
  (`Llama(draft_model=LlamaPromptLookupDecoding(num_pred_tokens=N))`, "llamacpp-pld" with N=10 and
  "llamacpp-pld2" with N=2, the setting its README suggests for CPU) on the pair's target GGUF.

Every call builds a fresh `GenerationConfig` (plain greedy: no repetition penalty from the model's
generation_config.json, no schedule state from an earlier run), so nothing leaks between runs or into the
engine. Their prefill cannot be separated from the first step, so for these columns "prefill" is the time to
the first streamed token(s) and decode tok/s counts the tokens after them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from blazedit_server.bench.metrics import MethodRun
from blazedit_server.engine.prompt import FileExtractor
from blazedit_server.engine.text import Detokenizer

HF_METHODS = ("hf-pld", "hf-assisted")
LLAMACPP_METHODS = ("llamacpp-plain", "llamacpp-pld", "llamacpp-pld2")
PLD_TOKENS = {"llamacpp-pld": 10, "llamacpp-pld2": 2}


@dataclass
class Job:
    """One reference run: the engine's prompt ids for the task, its original file, the token cap."""

    prompt_ids: list[int]
    original: str
    max_new_tokens: int
    eos_ids: frozenset[int]


@dataclass
class Clock:
    """Start, first output and end times of one generation, and how many tokens the first output held."""

    start: float = field(default_factory=time.perf_counter)
    first: float | None = None
    first_tokens: int = 0

    def saw(self, n_tokens: int) -> None:
        if self.first is None:
            self.first, self.first_tokens = time.perf_counter(), n_tokens


class FileWatch:
    """Follows a reply token by token (incremental detokenization) and says when the edited file is complete,
    which is where the engine stops too."""

    def __init__(self, tokenizer: Tokenizer, original: str) -> None:
        self.detokenizer = Detokenizer(tokenizer)
        self.extractor = FileExtractor(original)
        self.file = ""
        self.seen = 0

    def feed(self, ids: Sequence[int]) -> bool:
        """Take the ids past the ones already seen (`ids` is the whole reply so far); True once complete."""
        self.file += self.extractor.feed(self.detokenizer.feed(ids[self.seen :]))
        self.seen = len(ids)
        return self.extractor.done

    def text(self) -> str:
        return self.file + self.extractor.finish()


def finished_run(method: str, job: Job, ids: list[int], watch: FileWatch, clock: Clock) -> MethodRun:
    end = time.perf_counter()
    watch.feed(ids)
    first = clock.first or end
    return MethodRun(
        method=method,
        text=watch.text(),
        generated_tokens=len(ids),
        decode_tokens=max(len(ids) - clock.first_tokens, 0),
        prefill_s=first - clock.start,
        decode_s=end - first,
        finish_reason="length" if len(ids) >= job.max_new_tokens else "stop",
    )


# --- transformers ----------------------------------------------------------------------------------------


class FirstChunk(BaseStreamer):
    """`generate` streams the prompt first, then each step's new tokens: notes when the first step is back."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.prompt_seen = clock, False

    def put(self, value: torch.Tensor) -> None:
        if self.prompt_seen:
            self.clock.saw(value.numel())
        self.prompt_seen = True

    def end(self) -> None:
        pass


class FileComplete(StoppingCriteria):
    def __init__(self, watch: FileWatch, prompt_len: int) -> None:
        self.watch, self.prompt_len = watch, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        # input_ids: [1, prompt + generated so far]; the accepted sequence only grows
        done = self.watch.feed(input_ids[0, self.prompt_len :].tolist())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def greedy_config(job: Job, **mode) -> GenerationConfig:
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=job.max_new_tokens,
        eos_token_id=sorted(job.eos_ids),
        pad_token_id=min(job.eos_ids),
        **mode,
    )


@torch.inference_mode()
def hf_generate(method: str, target, tokenizer: Tokenizer, job: Job, **mode) -> MethodRun:
    """Greedy `target.generate` on the job's prompt with `mode` (prompt lookup or an assistant model)."""
    input_ids = torch.tensor([job.prompt_ids], device=target.device)  # [1, prompt]
    clock, watch = Clock(), FileWatch(tokenizer, job.original)
    out = target.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        generation_config=greedy_config(job, **{k: v for k, v in mode.items() if k != "assistant_model"}),
        assistant_model=mode.get("assistant_model"),
        stopping_criteria=StoppingCriteriaList([FileComplete(watch, len(job.prompt_ids))]),
        streamer=FirstChunk(clock),
    )
    ids = [i for i in out[0, len(job.prompt_ids) :].tolist() if i not in job.eos_ids]
    return finished_run(method, job, ids, FileWatch(tokenizer, job.original), clock)


def hf_prompt_lookup(target, tokenizer: Tokenizer, job: Job) -> MethodRun:
    return hf_generate("hf-pld", target, tokenizer, job, prompt_lookup_num_tokens=10)


def hf_assisted(target, draft, tokenizer: Tokenizer, job: Job) -> MethodRun:
    """Assisted decoding with transformers' defaults (20 tokens, confidence 0.4, constant schedule). The
    draft's generation_config holds those knobs and `generate` writes back to it, so it is fresh for every
    call and restored afterwards."""
    saved = draft.generation_config
    draft.generation_config = GenerationConfig(**GenerationConfig._get_default_generation_params())
    try:
        return hf_generate("hf-assisted", target, tokenizer, job, assistant_model=draft)
    finally:
        draft.generation_config = saved


# --- llama.cpp -------------------------------------------------------------------------------------------


class LlamaCppReference:
    """llama-cpp-python's high-level `Llama` on the target GGUF: plain greedy, or with its prompt-lookup
    draft model (`pld_tokens` tokens a round). Its own context, so the engine's cache is never touched."""

    def __init__(self, gguf: Path, *, n_ctx: int, n_threads: int, pld_tokens: int | None = None) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        draft = LlamaPromptLookupDecoding(num_pred_tokens=pld_tokens) if pld_tokens else None
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_gpu_layers=0,
            draft_model=draft,
            # with a draft model llama-cpp-python keeps every token's logits, but sizes their buffer by this
            # argument: left False, it holds one batch (512 tokens) and longer prompts overflowed it
            logits_all=draft is not None,
            verbose=False,
        )

    def tokens(self, job: Job) -> Iterable[int]:
        self.llm.reset()  # no prefix reuse from the previous task: every run pays its own prefill
        return self.llm.generate(job.prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)

    def run(self, method: str, tokenizer: Tokenizer, job: Job) -> MethodRun:
        clock, watch, ids = Clock(), FileWatch(tokenizer, job.original), []
        for token in self.tokens(job):
            clock.saw(1)
            if token in job.eos_ids:
                break
            ids.append(token)
            if len(ids) >= job.max_new_tokens or watch.feed(ids):
                break
        return finished_run(method, job, ids, watch, clock)
