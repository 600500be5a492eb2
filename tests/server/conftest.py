"""A FakeEngine with the real Engine's contract (validation first, Started/Step/Finished, cancel checked every
step, EngineError when poisoned), and a FastAPI TestClient over an app built on it: the cheapest fake that
still runs the daemon's own worker, queue, routes and error mapping. The real-process tests use `daemon`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from blazedit_client.errors import ContextLengthError, EngineError, InvalidRequestError
from blazedit_client.protocol import FinishReason, LayerStats, Stats, Strategy, Timings
from blazedit_server.app import create_app
from blazedit_server.engine.runner import Finished, SamplingParams, Started, Step
from blazedit_server.settings import Settings
from fastapi.testclient import TestClient

FAKE_CONTEXT = 4096
GREEDY = SamplingParams()


class FakeEngine:
    """Edits by instruction "replace OLD with NEW"; emits the new file one line per verification step.

    `gate`, when set by a test, is waited on before every step (so a test can hold a request mid-run);
    instruction "explode" fails like a poisoned GPU at the first step.
    """

    model_name = "fake-pair"
    backend_name = "fake"
    default_strategy = Strategy.multilayer
    n_ctx = FAKE_CONTEXT

    def __init__(self) -> None:
        self.gate: threading.Event | None = None
        self.calls: list[dict] = []

    def edit(
        self,
        file,
        instruction,
        *,
        language=None,
        path=None,
        strategy=None,
        params=GREEDY,
        cancel=None,
    ) -> Iterator:
        self._check(file, "file")
        self._check(instruction, "instruction")
        self.calls.append({"kind": "edit", "file": file, "instruction": instruction, "language": language})
        old, _, new = instruction.removeprefix("replace ").partition(" with ")
        output = file.replace(old, new) if old and new else file
        return self._run(output, file, params, cancel, explode=instruction == "explode")

    def chat(self, messages, *, prediction=None, strategy=None, params=GREEDY, cancel=None) -> Iterator:
        self.calls.append({"kind": "chat", "messages": messages, "prediction": prediction, "params": params})
        reply = prediction if prediction is not None else messages[-1]["content"]
        return self._run(reply, prediction or "", params, cancel, explode=reply == "explode")

    def complete(self, prompt, *, prediction=None, strategy=None, params=GREEDY, cancel=None) -> Iterator:
        self._check(prompt, "prompt")
        self.calls.append({"kind": "complete", "prompt": prompt, "prediction": prediction, "params": params})
        return self._run(
            prediction if prediction is not None else prompt[::-1], prediction or "", params, cancel
        )

    def _check(self, text: str, param: str) -> None:
        if not text.strip():
            raise InvalidRequestError(f"{param} is empty", param=param)
        if len(text) > FAKE_CONTEXT:
            raise ContextLengthError(f"{param} exceeds the context", param=param)

    def _run(self, output, reference, params, cancel, *, explode=False) -> Iterator:
        if params.max_new_tokens is not None and params.max_new_tokens > FAKE_CONTEXT:
            raise ContextLengthError("max_tokens exceeds the context", param="max_tokens")
        return self._steps(output, reference, params, cancel, explode)

    def _steps(self, output, reference, params, cancel, explode) -> Iterator:
        yield Started(prompt_tokens=len(output) // 4 + 7)
        lines, emitted, reason = output.splitlines(keepends=True), [], FinishReason.stop
        limit = params.max_new_tokens or len(lines)
        for line in lines[:limit]:
            if self.gate is not None:
                self.gate.wait(timeout=30)
            if explode:
                raise EngineError("engine failure: CUDA error: an illegal memory access was encountered")
            emitted.append(line)
            yield Step(token_ids=[ord(c) for c in line[:4]], text=line, drafted=3, accepted=2)
            if cancel is not None and cancel.is_set():
                reason = FinishReason.cancelled
                break
        else:
            reason = FinishReason.length if limit < len(lines) else FinishReason.stop
        copied = sum(len(line) for line in emitted if line in reference)
        stats = Stats(
            generated_tokens=len(emitted),
            target_passes=len(emitted),
            layers={"pld": LayerStats(proposed=copied + 2, accepted=copied), "target": LayerStats()},
        )
        yield Finished(
            reason, "".join(emitted), len(output) // 4 + 7, len(emitted), stats, Timings(decode_s=0.1)
        )


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def make_client(fake_engine):
    """make_client(**settings) -> a TestClient (lifespan run) over an app on the FakeEngine."""
    clients = []
    poisoned = threading.Event()

    def make(**overrides) -> TestClient:
        settings = Settings(model="fake-pair", **overrides)
        app = create_app(settings, load_engine=lambda _: fake_engine, on_poison=poisoned.set)
        app.state.poisoned_event = poisoned
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture(scope="module")
def fake_daemon():
    """A real uvicorn daemon (no API key) over a FakeEngine: fast enough to fuzz."""
    from fixtures.daemon import running_daemon, test_settings

    with running_daemon(test_settings(api_key=None), lambda _: FakeEngine()) as daemon:
        yield daemon
