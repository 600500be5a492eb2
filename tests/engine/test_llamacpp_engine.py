"""The engine on llama.cpp with the real default pair.

- "auto" picks llama.cpp on a machine without CUDA, and an edit runs within the daemon's 3 GB memory budget
  (the GGUF files only: no float32 weights are loaded);
- every strategy is compared with plain greedy decoding on the same backend. llama.cpp's batched kernels round
  differently from its one-token path, so outputs may part; where they do, the two tokens must be a near-tie
  of the target at that position (within the rounding bound the conformance suite measures), never a real
  disagreement;
- bad input and cancellation behave exactly as on the transformers backend (tiny pair).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from importlib import resources

import pytest
import torch
from blazedit_client.errors import ContextLengthError, InvalidRequestError
from blazedit_client.protocol import FinishReason, Strategy
from blazedit_server.engine import loading
from blazedit_server.engine.runner import Engine, Finished, SamplingParams, Started, Step

log = logging.getLogger(__name__)

TASK_IDS = ("humanevalfix/Python/0", "humanevalfix/Python/2")  # the engine's real-pair tasks
MAX_NEW_TOKENS = 48
# Logits of one position move by up to ~0.7 between llama.cpp's one-token and batched passes (conformance
# suite); two tokens can swap places only if their one-pass logits are closer than twice that bound.
NEAR_TIE = 2.0
RSS_BUDGET_MB = 3 * 1024


def dev_tasks() -> list[dict]:
    data = resources.files("blazedit_server") / "data/edits/humanevalfix-python.jsonl"
    tasks = {task["id"]: task for task in map(json.loads, data.read_text(encoding="utf-8").splitlines())}
    return [tasks[task_id] for task_id in TASK_IDS]


@pytest.fixture(scope="module")
def llama_engine(real_pair) -> Engine:
    return Engine.load(real_pair, backend="llamacpp", calibrate=False)


def output_ids(engine: Engine, task: dict, strategy: Strategy) -> list[int]:
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS)
    items = list(engine.edit(task["before"], task["instruction"], language="python", strategy=strategy,
                             params=params))  # fmt: skip
    assert isinstance(items[-1], Finished)
    return [token for item in items if isinstance(item, Step) for token in item.token_ids]


def first_difference(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)


def one_pass_logits(engine: Engine, ids: list[int]) -> torch.Tensor:
    """The target's logits for the token after `ids`, from one batched pass over all of them."""
    engine.target.reset()
    logits = engine.target.forward(ids, logits_from=len(ids) - 1)[0]
    engine.target.reset()
    return logits


@pytest.mark.real_pair
def test_auto_picks_llamacpp_on_a_machine_without_cuda(real_pair):
    expected = "transformers" if torch.cuda.is_available() else "llamacpp"
    assert loading.resolve_backend("auto", real_pair) == expected


RSS_SCRIPT = """
import sys
from blazedit_models.cache import LocalModel, LocalPair
from blazedit_server.engine.runner import Engine, SamplingParams
target, draft = (LocalModel(n, h, g) for n, h, g in (sys.argv[1:4], sys.argv[4:7]))
engine = Engine.load(LocalPair("real", target, draft), backend="llamacpp", calibrate=False)
list(engine.edit("def add(a, b):\\n    return a + b\\n", "rename add to plus",
                 params=SamplingParams(max_new_tokens=24)))
# VmHWM belongs to this process's own memory map; ru_maxrss would carry over a larger parent's peak across
# fork and exec (a pytest process with models loaded).
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]) // 1024)
"""


@pytest.mark.real_pair
def test_an_edit_on_llamacpp_fits_the_daemon_memory_budget(real_pair):
    """Peak RSS of a fresh process that loads the engine on llama.cpp and runs one edit."""
    models = [real_pair.target, real_pair.draft]
    argv = [str(value) for model in models for value in (model.name, model.hf_dir, model.gguf)]
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, *argv], capture_output=True, text=True, check=True, timeout=600
    )
    peak_mb = int(done.stdout.split()[-1])
    log.info("peak RSS of an engine on llama.cpp running one edit: %d MB", peak_mb)
    assert peak_mb <= RSS_BUDGET_MB


SOURCE = "def greet():\n    return 'hi'\n\n\ndef add(a, b):\n    return a + b\n"
# What an edit must keep as it is: a decomposed accent, the angstrom sign and a CJK compatibility ideograph
# (Unicode normalization, which Qwen's tokenizer applies by default, would rewrite each), Windows line ends,
# a missing final line break, special-token text (plain text in a file), and the code blocks of a Markdown
# file (whose fences must not end the file).
UNTOUCHED = {
    "unnormalized": SOURCE.replace("'hi'", '"cafe\u0301 \u212b \U0002f800"'),
    "crlf": SOURCE.replace("\n", "\r\n"),
    "no final newline": SOURCE.rstrip("\n"),
    "special token text": SOURCE.replace("'hi'", "'<|im_end|>'"),
    "markdown": f"# Math\n\n```python\n{SOURCE}```\n\nRun it:\n\n```sh\npython m.py\n```\n\nSee the docs.\n",
}


@pytest.mark.real_pair
@pytest.mark.parametrize("source", UNTOUCHED.values(), ids=list(UNTOUCHED))
def test_an_edit_changes_only_what_was_asked(llama_engine, source):
    params = SamplingParams(max_new_tokens=96)
    items = list(llama_engine.edit(source, "rename add to plus", strategy=Strategy.multilayer, params=params))
    expected = source.replace("def add", "def plus")
    assert items[-1].finish_reason == FinishReason.stop
    if source == UNTOUCHED["markdown"]:
        # The 1.5B model wants to end its answer after the first code block; with the end masked while the
        # file is open it goes on, but may add a blank line there: every line of the file must be there.
        assert nonblank_lines(items[-1].text) == nonblank_lines(expected)
    else:
        assert items[-1].text == expected


def nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.real_pair
@pytest.mark.slow
@pytest.mark.parametrize("task", dev_tasks(), ids=lambda task: task["id"])
def test_every_strategy_matches_plain_decoding_up_to_rounding_near_ties(llama_engine, task):
    plain = output_ids(llama_engine, task, Strategy.regular)
    assert len(plain) == MAX_NEW_TOKENS
    prompt, _ = llama_engine.encode_edit(task["before"], task["instruction"], "python", None)
    for strategy in (Strategy.pld, Strategy.draft, Strategy.multilayer):
        ids = output_ids(llama_engine, task, strategy)
        at = first_difference(ids, plain)
        log.info("%s %s: first difference from plain decoding at %s", task["id"], strategy.value, at)
        if at is None:
            assert ids == plain, strategy
            continue
        logits = one_pass_logits(llama_engine, prompt + plain[:at])
        gap = abs(float(logits[plain[at]] - logits[ids[at]]))
        assert gap < NEAR_TIE, (strategy, at, gap)


# --- bad input and cancellation: the same on both backends --------------------------------------------------


@pytest.fixture(
    scope="module", params=["transformers", pytest.param("llamacpp", marks=pytest.mark.real_pair)]
)
def engine(request) -> Engine:
    return request.getfixturevalue("tiny_engine" if request.param == "transformers" else "llama_engine")


class NoModelWork:
    """Stands in for a backend: any model work is a test failure."""

    def __init__(self, backend) -> None:
        self.n_ctx = backend.n_ctx

    def __getattr__(self, name):
        raise AssertionError(f"model work ({name}) before validation")


CODE = "def add(a, b):\n    return a + b\n"
BAD_EDITS = [
    ({"file": "", "instruction": "rename"}, InvalidRequestError, "file"),
    ({"file": "a\x00b\n", "instruction": "rename"}, InvalidRequestError, "file"),
    ({"file": "caf\udce9\n", "instruction": "rename"}, InvalidRequestError, "file"),
    ({"file": CODE, "instruction": " "}, InvalidRequestError, "instruction"),
    (
        {"file": CODE, "instruction": "x", "params": SamplingParams(max_new_tokens=0)},
        InvalidRequestError,
        "max_tokens",
    ),
    ({"file": CODE, "instruction": "x", "params": SamplingParams(top_p=0)}, InvalidRequestError, "top_p"),
]


@pytest.mark.parametrize(("kwargs", "error", "param"), BAD_EDITS)
def test_bad_edits_are_refused_before_model_work(engine, monkeypatch, kwargs, error, param):
    monkeypatch.setattr(engine, "target", NoModelWork(engine.target))
    monkeypatch.setattr(engine, "draft", NoModelWork(engine.draft))
    with pytest.raises(error) as info:
        engine.edit(**kwargs)
    assert info.value.param == param and info.value.message


def test_a_file_longer_than_the_context_is_a_context_error(engine, monkeypatch):
    monkeypatch.setattr(engine, "target", NoModelWork(engine.target))
    with pytest.raises(ContextLengthError) as info:
        engine.edit("x = 1\n" * engine.n_ctx, "rename x")
    assert info.value.param == "file"


def test_cancel_stops_within_one_step(engine):
    cancel = threading.Event()
    stream = engine.complete(CODE, params=SamplingParams(max_new_tokens=200), cancel=cancel)
    assert isinstance(next(stream), Started)
    assert isinstance(next(stream), Step)
    cancel.set()
    rest = list(stream)
    assert isinstance(rest[-1], Finished) and rest[-1].finish_reason == FinishReason.cancelled
    assert not [item for item in rest if isinstance(item, Step) and item.token_ids]
    assert rest[-1].completion_tokens < 200
