"""The real default pair on the exact transformers fp32 backend: short dev tasks, every strategy
token-identical to regular, stats consistent. Kept to a few minutes: two short tasks, outputs capped."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from blazedit_client.protocol import FinishReason, Strategy
from blazedit_server.engine.runner import Engine, Finished, SamplingParams, Step

pytestmark = [pytest.mark.real_pair, pytest.mark.slow]

TASK_IDS = ("humanevalfix/Python/0", "humanevalfix/Python/2")
MAX_NEW_TOKENS = 32


def dev_tasks():
    data = resources.files("blazedit_server") / "data/edits/humanevalfix-python.jsonl"
    tasks = {task["id"]: task for task in map(json.loads, data.read_text(encoding="utf-8").splitlines())}
    return [tasks[task_id] for task_id in TASK_IDS]


@pytest.fixture(scope="module")
def real_engine(real_pair):
    return Engine.load(real_pair, backend="transformers", device="cpu", dtype="float32", calibrate=False)


@pytest.mark.parametrize("task", dev_tasks(), ids=lambda task: task["id"])
def test_every_strategy_matches_regular_on_a_dev_task(real_engine, task):
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS)
    outputs = {}
    for strategy in Strategy:
        stream = real_engine.edit(task["before"], task["instruction"], language="python", strategy=strategy,
                                  params=params)  # fmt: skip
        items = list(stream)
        steps, finished = [i for i in items if isinstance(i, Step)], items[-1]
        assert isinstance(finished, Finished)
        stats = finished.stats
        assert stats.generated_tokens == finished.completion_tokens == sum(len(s.token_ids) for s in steps)
        assert (
            stats.layers["target"].accepted == stats.layers["pld"].accepted + stats.layers["draft"].accepted
        )
        assert stats.layers["target"].proposed == sum(s.drafted for s in steps)
        assert finished.text == "".join(s.text for s in steps)
        outputs[strategy] = [t for s in steps for t in s.token_ids]
        if strategy == Strategy.regular:
            assert finished.finish_reason in (FinishReason.length, FinishReason.stop)
            assert task["before"][:40] in finished.text  # the file is being rewritten, fences stripped
        else:
            assert stats.layers["target"].accepted > 0  # the copy-heavy start is drafted
        assert outputs[strategy] == outputs[Strategy.regular], strategy
