"""Runs every method on the same task, one after another, in one process with the models loaded once.

The methods are the engine's four strategies (`regular` always runs first: it is the reference for
"identical" and for the speedups) and the reference decoders of the engine's backend (`references.py`). Before
timing, every method decodes a few tokens of the first task (warm-up: allocator, kernels, caches). A method
that fails on a task is recorded with its error and the run goes on; the summary compares speeds only over
the tasks that every method completed.

With `repeat` > 1 every method runs that many times on each task, in rounds over all methods (a slow spell
of the machine hits them alike), and its fastest run counts: noise from other work only ever slows a run
down. A method whose output differs between its runs is recorded as failed (greedy decoding is
deterministic; a speed of an unstable output means nothing).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from blazedit_client.errors import InvalidRequestError
from blazedit_client.protocol import Strategy
from tqdm import tqdm

from blazedit_server.bench import references
from blazedit_server.bench.metrics import MethodRun, TaskResult, measure
from blazedit_server.bench.tasks import EXTRA_TOKENS, EditTask, TaskSet
from blazedit_server.engine.runner import Engine, Finished, SamplingParams, Step

log = logging.getLogger(__name__)

ENGINE_METHODS = tuple(s.value for s in Strategy)
REFERENCE_METHODS = {"transformers": references.HF_METHODS, "llamacpp": references.LLAMACPP_METHODS}
SPEEDUP_BASELINES = ("regular", "pld", *references.HF_METHODS, *references.LLAMACPP_METHODS)
WARM_UP_TOKENS = 8

Runner = Callable[[EditTask, references.Job], MethodRun]


def methods_for(backend: str, chosen: list[str] | None) -> list[str]:
    """The methods to run, `regular` first; unknown names are a clear error listing the valid ones."""
    valid = [*ENGINE_METHODS, *REFERENCE_METHODS.get(backend, ())]
    unknown = [m for m in chosen or [] if m not in valid]
    if unknown:
        raise InvalidRequestError(
            f"unknown method(s) {', '.join(unknown)} for backend {backend}; choose from {', '.join(valid)}",
            param="strategies",
        )
    return ["regular", *(m for m in (chosen or valid) if m != "regular")]


def baselines(methods: list[str]) -> list[str]:
    return [b for b in SPEEDUP_BASELINES if b in methods]


# --- one method on one task ---------------------------------------------------------------------------------


def engine_run(engine: Engine, strategy: Strategy, task: EditTask, job: references.Job) -> MethodRun:
    """One `Engine.edit` call, consumed to the end; the generated ids are the concatenated steps."""
    params = SamplingParams(max_new_tokens=job.max_new_tokens)
    events = engine.edit(
        task.before, task.instruction, language=task.language, strategy=strategy, params=params
    )
    ids: list[int] = []
    for event in events:
        if isinstance(event, Step):
            ids.extend(event.token_ids)
        elif isinstance(event, Finished):
            return finished_engine_run(strategy.value, event, ids)
    raise RuntimeError("the engine's stream ended without a Finished event")


def finished_engine_run(method: str, done: Finished, ids: list[int]) -> MethodRun:
    return MethodRun(
        method=method,
        text=done.text,
        token_ids=ids,
        generated_tokens=done.completion_tokens,
        decode_tokens=done.completion_tokens,
        prefill_s=done.timings.prefill_s,
        decode_s=done.timings.decode_s,
        finish_reason=done.finish_reason.value,
        target_passes=done.stats.target_passes,
        draft_passes=done.stats.draft_passes,
        layers=done.stats.layers,
    )


def guarded(method: str, runner: Runner, task: EditTask, job: references.Job) -> MethodRun:
    """Run one method; a failure becomes a recorded error so a long benchmark is never lost to one task."""
    try:
        return runner(task, job)
    except Exception as exc:  # any failure of one method on one task is a result, not a crash
        log.warning("%s failed on %s: %s\n%s", method, task.id, exc, traceback.format_exc())
        return MethodRun(method=method, error=f"{type(exc).__name__}: {exc}")


# --- the bench: methods bound to one engine -----------------------------------------------------------------


@dataclass
class Bench:
    engine: Engine
    pair: Any  # blazedit_models LocalPair
    methods: list[str]
    max_new_tokens: int | None = None
    repeat: int = 1
    runners: dict[str, Runner] = field(default_factory=dict)

    def job(self, task: EditTask, cap: int | None = None) -> references.Job:
        prompt, _ = self.engine.encode_edit(task.before, task.instruction, task.language, None)
        file_tokens = len(self.engine.encode_text(task.before))
        limit = cap or self.max_new_tokens or file_tokens + EXTRA_TOKENS
        return references.Job(prompt, task.before, limit, frozenset(self.engine.eos))

    def prepare(self, tasks: list[EditTask]) -> None:
        """Bind every method to a runner (reference decoders are built here, sized for these tasks)."""
        needed = max(len(j.prompt_ids) + j.max_new_tokens for j in map(self.job, tasks)) + 64
        n_ctx = -(-needed // 512) * 512  # llama.cpp pads contexts: keep its logits buffer in step
        for method in self.methods:
            self.runners[method] = self.runner(method, n_ctx)

    def runner(self, method: str, n_ctx: int) -> Runner:
        engine, tokenizer = self.engine, self.engine.tokenizer.backend_tokenizer
        if method in ENGINE_METHODS:
            return lambda task, job: engine_run(engine, Strategy(method), task, job)
        if method == "hf-pld":
            return lambda task, job: references.hf_prompt_lookup(engine.target.model, tokenizer, job)
        if method == "hf-assisted":
            return lambda task, job: references.hf_assisted(
                engine.target.model, engine.draft.model, tokenizer, job
            )
        llama = references.LlamaCppReference(
            self.pair.target.gguf,
            n_ctx=n_ctx,
            n_threads=getattr(engine.target, "n_threads", 0) or None,
            pld_tokens=references.PLD_TOKENS.get(method),
        )
        return lambda task, job: llama.run(method, tokenizer, job)

    def warm_up(self, task: EditTask) -> None:
        job = self.job(task, cap=WARM_UP_TOKENS)
        for method, runner in self.runners.items():
            guarded(method, runner, task, job)

    def run_task(self, task: EditTask, set_name: str, bar: tqdm) -> TaskResult:
        job = self.job(task)
        runs: dict[str, MethodRun] = {}
        for _ in range(self.repeat):
            for method in self.methods:
                bar.set_postfix_str(f"{task.id} {method}")
                run = guarded(method, self.runners[method], task, job)
                log_run(task, run)
                runs[method] = fastest(runs[method], run) if method in runs else run
                bar.update(1)
        results = {m: measure(run, runs["regular"], task.tests) for m, run in runs.items()}
        return TaskResult(
            task_id=task.id, set_name=set_name, prompt_tokens=len(job.prompt_ids), results=results
        )


def fastest(kept: MethodRun, run: MethodRun) -> MethodRun:
    """The faster of two runs of one method on one task; a failure, or outputs that differ, fail both."""
    if kept.error or run.error:
        return kept if kept.error else run
    if run.token_ids != kept.token_ids:
        return MethodRun(method=run.method, error="the output differed between repeated runs")
    return run if run.decode_s < kept.decode_s else kept


def log_run(task: EditTask, run: MethodRun) -> None:
    if run.error:
        return
    rate = run.decode_tokens / run.decode_s if run.decode_s else 0.0
    log.info(
        "%s %-15s %4d tokens  %6.2f tok/s  (%s)",
        task.id,
        run.method,
        run.generated_tokens,
        rate,
        run.finish_reason,
    )


def interleave(sets: list[TaskSet]) -> list[tuple[str, EditTask]]:
    """Tasks round-robin over the sets, so a run cut short still covers every set."""
    longest = max(len(s.tasks) for s in sets)
    return [(s.name, s.tasks[i]) for i in range(longest) for s in sets if i < len(s.tasks)]


def run_sets(
    bench: Bench,
    sets: list[TaskSet],
    *,
    progress: bool = True,
    on_task: Callable[[list[TaskResult]], None] | None = None,
) -> list[TaskResult]:
    """Warm up, then every method on every task; a progress bar on stderr counts method runs, and `on_task`
    sees the results so far after each task (a long run saves partial results)."""
    tasks = interleave(sets)
    bench.prepare([t for _, t in tasks])
    bench.warm_up(tasks[0][1])
    results: list[TaskResult] = []
    total = len(tasks) * len(bench.methods) * bench.repeat
    with tqdm(total=total, desc="bench", unit="run", disable=not progress) as bar:
        for name, task in tasks:
            results.append(bench.run_task(task, name, bar))
            if on_task is not None:
                on_task(results)
    return results
