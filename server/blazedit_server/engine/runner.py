"""The Engine: owns the two backends and the tokenizer, validates requests, and streams Started/Step/Finished.

Every request (`edit`, `chat`, `complete`) is validated before any model work (errors name the offending
`param`), then decoded by `speculative.generate` with the drafter of its strategy. Token ids become text
through the incremental detokenizer, then stop strings, then (for `edit`) the file extractor, so `Step.text`
of an edit is file content only. Not thread-safe: one worker thread uses an Engine.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from blazedit_client.errors import ContextLengthError, EngineError, InvalidRequestError
from blazedit_client.protocol import FinishReason, LayerStats, Stats, Strategy, Timings

from . import loading
from .backend import Backend
from .drafters import DRAFT, PLD, LookupDrafter, ModelDrafter
from .policy import DEFAULT_COSTS, Costs, Planner, measure
from .prompt import FileExtractor, edit_messages, fence_for, file_end, reply_start
from .sampling import make_sampler
from .speculative import StepResult, anywhere, generate
from .text import Detokenizer, StopStrings

log = logging.getLogger(__name__)

ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int | None = None  # None: up to the context window
    temperature: float = 0.0  # 0 = greedy (lossless)
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Started:
    prompt_tokens: int


@dataclass
class Step:
    token_ids: list[int]
    text: str
    drafted: int
    accepted: int


@dataclass
class Finished:
    finish_reason: FinishReason
    text: str
    prompt_tokens: int
    completion_tokens: int
    stats: Stats
    timings: Timings


Event = Started | Step | Finished


# --- validation (before any model work) ---------------------------------------------------------------------


def check_text(value: Any, param: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{param} must be text", param=param)
    if not allow_empty and not value.strip():
        raise InvalidRequestError(f"{param} is empty", param=param)
    if "\x00" in value:
        raise InvalidRequestError(f"{param} looks binary (it contains NUL characters)", param=param)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(f"{param} is not valid UTF-8 text", param=param) from exc
    return value


def check_params(params: SamplingParams) -> None:
    if params.max_new_tokens is not None and params.max_new_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
    if params.temperature < 0:
        raise InvalidRequestError("temperature must be >= 0", param="temperature")
    if not 0 < params.top_p <= 1:
        raise InvalidRequestError("top_p must be in (0, 1]", param="top_p")
    if any(not isinstance(stop, str) for stop in params.stop):
        raise InvalidRequestError("stop must be a list of strings", param="stop")


def check_edit_request(file: Any, instruction: Any, params: SamplingParams) -> None:
    """An edit's checks; the daemon and the command line make them too, before queueing or loading."""
    check_text(file, "file")
    check_text(instruction, "instruction")
    check_params(params)


def check_prompt(prompt: Any) -> str:
    """A raw prompt: blank is a prompt, empty is not."""
    check_text(prompt, "prompt", allow_empty=True)
    if not prompt:
        raise InvalidRequestError("prompt is empty", param="prompt")
    return prompt


def check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty list", param="messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequestError(f"each message needs a role in {sorted(ROLES)}", param="messages")
        check_text(message.get("content"), "messages", allow_empty=True)
    return messages


@dataclass
class Request:
    """A validated request, ready to decode."""

    prompt: list[int]
    reference: list[int] | None  # prompt-lookup source; None: the prompt
    strategy: Strategy
    params: SamplingParams
    max_new_tokens: int
    extractor: FileExtractor | None = None
    cancel: threading.Event | None = None
    # prompt positions prompt lookup never copies across, and what the answer has there (PromptLookup.endings)
    stops: dict[int, list[int]] = field(default_factory=dict)


# --- per-request bookkeeping --------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a request produced so far: steps, tokens, text, per-layer counts and the clock."""

    steps: int = 0
    tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    proposed_by: Counter = field(default_factory=Counter)
    accepted_by: Counter = field(default_factory=Counter)
    text: list[str] = field(default_factory=list)
    begin: float = field(default_factory=time.perf_counter)
    prefill_s: float = 0.0
    decode_s: float = 0.0

    def prefilled(self) -> None:
        self.prefill_s = time.perf_counter() - self.begin

    def decoded(self) -> None:
        self.decode_s = time.perf_counter() - self.begin - self.prefill_s

    def add(self, result: StepResult, text: str) -> Step:
        self.steps += 1
        self.tokens += len(result.tokens)
        self.drafted += result.drafted
        self.accepted += result.accepted
        self.proposed_by.update(result.proposed_by)
        self.accepted_by.update(result.accepted_by)
        self.text.append(text)
        return Step(result.tokens, text, result.drafted, result.accepted)

    def add_text(self, text: str) -> Step:
        """Text released at the end (held back for a possible stop string or fence): a step without tokens."""
        self.text.append(text)
        return Step([], text, 0, 0)

    def finished(self, finish: FinishReason, prompt_tokens: int, draft_passes: int) -> Finished:
        return Finished(
            finish_reason=finish,
            text="".join(self.text),
            prompt_tokens=prompt_tokens,
            completion_tokens=self.tokens,
            stats=self.stats(draft_passes),
            timings=Timings(prefill_s=self.prefill_s, decode_s=self.decode_s,
                            decode_tokens_per_s=self.tokens / self.decode_s if self.decode_s else 0.0),
        )  # fmt: skip

    def stats(self, draft_passes: int) -> Stats:
        layers = {name: LayerStats(proposed=self.proposed_by[name], accepted=self.accepted_by[name])
                  for name in (PLD, DRAFT)}  # fmt: skip
        layers["target"] = LayerStats(proposed=self.drafted, accepted=self.accepted)
        return Stats(generated_tokens=self.tokens, target_passes=self.steps, draft_passes=draft_passes,
                     layers=layers)  # fmt: skip


class TextPipe:
    """Token ids -> detokenized text -> stop strings -> (edit) file content."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], extractor: FileExtractor | None) -> None:
        self.tokenizer = tokenizer
        self.detok = Detokenizer(tokenizer.backend_tokenizer)
        self.stops = StopStrings(stops)
        self.extractor = extractor

    def feed(self, token_ids: Sequence[int]) -> str:
        text = self.stops.feed(self.detok.feed(token_ids))
        return self.extractor.feed(text) if self.extractor else text

    def finish(self) -> str:
        text = self.stops.flush()
        if self.extractor is None:
            return text
        return self.extractor.feed(text) + self.extractor.finish()

    def may_end(self, draft: Sequence[int] = ()) -> list[bool]:
        """Whether the answer may end before draft[0], ..., after draft[-1] (one entry per position a step
        verifies): a probe copy of the extractor reads the draft token by token."""
        if self.extractor is None:
            return anywhere(draft)
        allowed = [self.extractor.may_end]
        probe = copy.deepcopy(self.extractor) if draft else self.extractor
        for token in draft:
            probe.feed(self.tokenizer.decode([token]))
            allowed.append(probe.may_end)
        return allowed

    @property
    def stopped(self) -> bool:
        return self.stops.stopped or (self.extractor is not None and self.extractor.done)


# --- the engine ---------------------------------------------------------------------------------------------


class Engine:
    def __init__(
        self,
        target: Backend,
        draft: Backend,
        tokenizer: Any,
        *,
        model_name: str,
        backend_name: str,
        default_strategy: Strategy = Strategy.multilayer,
        costs: tuple[Costs, Costs] = (DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.35)),
    ) -> None:
        self.target, self.draft, self.tokenizer = target, draft, tokenizer
        self.model_name, self.backend_name, self.default_strategy = model_name, backend_name, default_strategy
        self.target_costs, self.draft_costs = costs
        self.n_ctx = min(target.n_ctx, draft.n_ctx)
        self.eos = loading.eos_ids(tokenizer)

    @classmethod
    def load(
        cls,
        pair: Any,
        *,
        backend: str = "auto",
        device: str = "auto",
        dtype: str = "auto",
        draft_dtype: str = "auto",
        strategy: Strategy | None = None,
        calibrate: bool = True,
    ) -> Engine:
        """`dtype` is the target's (transformers), `draft_dtype` the draft model's (`loading.draft_dtype`)."""
        name = loading.resolve_backend(backend, pair, device)
        tokenizer = loading.load_tokenizer(pair.target)
        loading.check_tokenizers(tokenizer, loading.load_tokenizer(pair.draft))
        target = loading.load_backend(pair.target, name, device=device, dtype=dtype)
        draft_weights = loading.draft_dtype(draft_dtype, dtype, device)  # llama.cpp reads no dtype
        draft = loading.load_backend(pair.draft, name, device=device, dtype=draft_weights)
        engine = cls(
            target,
            draft,
            tokenizer,
            model_name=pair.name,
            backend_name=name,
            default_strategy=strategy or Strategy.multilayer,
        )
        if calibrate:
            engine.calibrate()
        return engine

    def calibrate(self) -> None:
        """Measure T(n) of both models (a few seconds), for the cost-aware draft lengths."""
        self.target_costs, self.draft_costs = measure(self.target), measure(self.draft)
        log.info("forward seconds by size: target %s, draft %s", self.target_costs, self.draft_costs)

    # --- the three request kinds ---

    def edit(
        self,
        file: str,
        instruction: str,
        *,
        language: str | None = None,
        path: str | None = None,
        strategy: Strategy | None = None,
        params: SamplingParams = SamplingParams(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        check_edit_request(file, instruction, params)
        extractor = FileExtractor(file)  # the model reads `plain`; the extractor gives the file's form back
        plain = extractor.plain
        prompt, end = self.encode_edit(plain, instruction, language, path)
        needed = params.max_new_tokens or len(self.encode_text(plain)) + 16
        self.check_context(len(prompt), needed, "file" if params.max_new_tokens is None else "max_tokens")
        request = self.request(prompt, None, strategy, params, cancel)
        request.extractor = extractor
        request.stops = {end: self.encode_text(fence_for(plain))}  # the answer closes the fence, then ends
        return self.run(request)

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        prediction: str | None = None,
        strategy: Strategy | None = None,
        params: SamplingParams = SamplingParams(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        check_messages(messages)
        check_params(params)
        prompt, _ = self.encode_chat(messages)
        self.check_context(len(prompt), params.max_new_tokens or 1, "messages")
        return self.run(self.request(prompt, self.encode_prediction(prediction), strategy, params, cancel))

    def complete(
        self,
        prompt: str,
        *,
        prediction: str | None = None,
        strategy: Strategy | None = None,
        params: SamplingParams = SamplingParams(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        check_prompt(prompt)
        check_params(params)
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)  # a raw prompt: its special tokens act
        self.check_context(len(ids), params.max_new_tokens or 1, "prompt")
        return self.run(self.request(ids, self.encode_prediction(prediction), strategy, params, cancel))

    # --- helpers ---

    def encode_chat(
        self, messages: list[dict[str, str]], reply_start: str = ""
    ) -> tuple[list[int], dict[int, tuple[int, list[int]]]]:
        """The chat template's own special tokens as such, the messages' text (and `reply_start`) as plain
        text: a file that contains "<|im_end|>" (the code of an LLM tool) must not end its turn. Also, per
        message, where its text begins in the ids and the character offset where each of its tokens ends."""
        marked = [{**message, "content": f"\x00{i}\x00"} for i, message in enumerate(messages)]
        template = self.tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
        pieces = re.split("\x00([0-9]+)\x00", template)  # template, index, template, index, ..., template
        ids, spans = [], {}
        for i, piece in enumerate(pieces):
            if i % 2:
                text = messages[int(piece)]["content"]
                encoded = self.tokenizer(
                    text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
                )
                spans[int(piece)] = (len(ids), [stop for _, stop in encoded["offset_mapping"]])
                ids += encoded["input_ids"]
            elif piece:
                ids += self.tokenizer.encode(piece, add_special_tokens=False)
        return ids + self.encode_text(reply_start), spans

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)

    def encode_edit(
        self, file: str, instruction: str, language: str | None, path: str | None
    ) -> tuple[list[int], int]:
        """The prompt, and the index of its first token past the original file (`file_end`)."""
        messages = edit_messages(file, instruction, language, path)
        ids, spans = self.encode_chat(messages, reply_start(file, language))
        start, stops = spans[0]
        end = file_end(file, language, path)
        return ids, start + sum(stop <= end for stop in stops)

    def encode_prediction(self, prediction: str | None) -> list[int] | None:
        if prediction is None:
            return None
        check_text(prediction, "prediction", allow_empty=True)
        return self.encode_text(prediction)

    def check_context(self, prompt_tokens: int, new_tokens: int, param: str) -> None:
        if prompt_tokens + new_tokens > self.n_ctx:
            raise ContextLengthError(
                f"{prompt_tokens} prompt tokens + {new_tokens} new tokens exceed the model's context of "
                f"{self.n_ctx} tokens",
                param=param,
            )

    def request(
        self,
        prompt: list[int],
        reference: list[int] | None,
        strategy: Strategy | None,
        params: SamplingParams,
        cancel: threading.Event | None,
    ) -> Request:
        if strategy is not None and not isinstance(strategy, Strategy):
            raise InvalidRequestError(f"unknown strategy {strategy!r}", param="strategy")
        max_new = params.max_new_tokens or self.n_ctx - len(prompt)
        return Request(prompt, reference, strategy or self.default_strategy, params, max_new, cancel=cancel)

    def drafter(self, request: Request, sampler: Any) -> LookupDrafter | ModelDrafter:
        lookup = LookupDrafter(request.reference, request.stops)
        if request.strategy in (Strategy.regular, Strategy.pld):
            return lookup
        return ModelDrafter(self.draft, sampler, lookup if request.strategy == Strategy.multilayer else None)

    def run(self, request: Request) -> Iterator[Event]:
        try:
            yield from self.decode(request)
        except RuntimeError as exc:  # CUDA errors, out of memory, backend failures: the engine is poisoned
            raise EngineError(f"engine failure: {exc}") from exc

    def decode(self, request: Request) -> Iterator[Event]:
        sampler = make_sampler(request.params.temperature, request.params.top_p, request.params.seed)
        drafter = self.drafter(request, sampler)
        planner = Planner(request.strategy.value, self.target_costs, self.draft_costs)
        pipe, tally = TextPipe(self.tokenizer, request.params.stop, request.extractor), Tally()
        steps = generate(self.target, drafter, planner, request.prompt, sampler=sampler, eos=self.eos,
                         max_new_tokens=request.max_new_tokens, may_end=pipe.may_end)  # fmt: skip
        finish = FinishReason.cancelled
        try:
            for result in steps:
                if tally.steps == 0:
                    tally.prefilled()
                    yield Started(prompt_tokens=len(request.prompt))
                yield tally.add(result, pipe.feed(result.tokens))
                finish = finish_reason(result, pipe, request.cancel)
                if finish is not None:
                    break
        finally:
            steps.close()
        tally.decoded()
        rest = "" if finish == FinishReason.cancelled else pipe.finish()  # a cancelled edit is no file
        if rest:
            yield tally.add_text(rest)
        if finish == FinishReason.stop and not all(pipe.may_end()):  # the answer ended inside the file anyway
            finish = FinishReason.incomplete
        yield tally.finished(finish, len(request.prompt), drafter.passes)


def finish_reason(result: StepResult, pipe: TextPipe, cancel: threading.Event | None) -> FinishReason | None:
    if pipe.stopped:
        return FinishReason.stop
    if result.finish is None and cancel is not None and cancel.is_set():
        return FinishReason.cancelled
    return result.finish
