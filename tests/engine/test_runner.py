"""Engine end to end on the tiny pair: event order, stats that add up, validation, cancel, EngineError."""

from __future__ import annotations

import threading

import pytest
from blazedit_client.errors import ContextLengthError, EngineError, InvalidRequestError
from blazedit_client.protocol import FinishReason, Strategy
from blazedit_server.engine.prompt import FileExtractor, fence_for
from blazedit_server.engine.runner import Finished, SamplingParams, Started, Step, TextPipe
from fixtures.scripted import EditingTarget, ScriptedTarget

CODE = (
    "def add(a, b):\n    return a + b\n\n\n"
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n"
)


def events(stream):
    items = list(stream)
    assert isinstance(items[0], Started) and isinstance(items[-1], Finished)
    assert all(isinstance(item, Step) for item in items[1:-1])
    return items[0], items[1:-1], items[-1]


def check_consistent(steps, finished):
    """The counters of a request add up."""
    stats = finished.stats
    assert finished.text == "".join(step.text for step in steps)
    assert finished.completion_tokens == stats.generated_tokens == sum(len(s.token_ids) for s in steps)
    assert stats.layers["target"].proposed == sum(s.drafted for s in steps)
    assert stats.layers["target"].accepted == sum(s.accepted for s in steps)
    assert stats.layers["target"].proposed == stats.layers["pld"].proposed + stats.layers["draft"].proposed
    assert stats.layers["target"].accepted == stats.layers["pld"].accepted + stats.layers["draft"].accepted
    assert stats.target_passes >= len([s for s in steps if s.token_ids])
    assert all(0 <= s.accepted <= s.drafted and s.accepted <= len(s.token_ids) for s in steps)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_complete_streams_started_steps_finished(tiny_engine, strategy):
    started, steps, finished = events(
        tiny_engine.complete(CODE, strategy=strategy, params=SamplingParams(max_new_tokens=24))
    )
    assert started.prompt_tokens == finished.prompt_tokens > 0
    assert finished.finish_reason in (FinishReason.length, FinishReason.stop)
    assert finished.completion_tokens <= 24
    check_consistent(steps, finished)


def test_regular_is_plain_greedy_decoding(tiny_engine):
    """Cross-check against transformers' own greedy generate, without a cache trick of ours."""
    import torch

    ids = tiny_engine.tokenizer.encode(CODE, add_special_tokens=False)
    _, steps, _ = events(
        tiny_engine.complete(CODE, strategy=Strategy.regular, params=SamplingParams(max_new_tokens=12))
    )
    model = tiny_engine.target.model
    out = model.generate(
        torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=sorted(tiny_engine.eos)
    )
    expected = out[0, len(ids) :].tolist()
    got = [t for s in steps for t in s.token_ids]
    assert got == [t for t in expected if t not in tiny_engine.eos][: len(got)]
    assert len(got) == 12 or set(expected) & tiny_engine.eos


def test_chat_and_edit_stream(tiny_engine):
    _, steps, finished = events(
        tiny_engine.chat([{"role": "user", "content": "hi"}], params=SamplingParams(max_new_tokens=10))
    )
    check_consistent(steps, finished)
    _, steps, finished = events(
        tiny_engine.edit(CODE, "rename add", params=SamplingParams(max_new_tokens=10))
    )
    check_consistent(steps, finished)


@pytest.mark.parametrize(
    ("answer", "max_new_tokens", "text", "finish"),
    [
        ("I cannot help with that.", None, "", FinishReason.incomplete),
        ("Here is the new file:\n\n", 6, "", FinishReason.length),  # cut before the file began
        (CODE.replace("add", "plus"), None, CODE.replace("add", "plus"), FinishReason.stop),  # bare code
    ],
)
def test_an_answer_without_a_fence_is_the_file_only_if_it_has_a_line_of_it(
    tiny_engine, monkeypatch, answer, max_new_tokens, text, finish
):
    """Prose alone (a refusal) never replaces the file: no text, and the edit does not end as `stop`, so no
    client applies it as the whole new file."""
    prompt, _ = tiny_engine.encode_edit(CODE, "rename add", None, None)
    script = prompt + tiny_engine.tokenizer.encode(answer, add_special_tokens=False) + [min(tiny_engine.eos)]
    monkeypatch.setattr(tiny_engine, "target", ScriptedTarget(script, tiny_engine.target.vocab_size))
    params = SamplingParams(max_new_tokens=max_new_tokens)
    _, steps, finished = events(tiny_engine.edit(CODE, "rename add", strategy=Strategy.pld, params=params))
    check_consistent(steps, finished)
    assert finished.text == text and finished.finish_reason == finish


def test_an_edit_keeps_the_files_bom_and_crlf_and_the_model_sees_neither(tiny_engine, monkeypatch):
    target = EditingTarget(
        tiny_engine.tokenizer, tiny_engine.target.vocab_size, min(tiny_engine.eos), "add", "plus"
    )
    monkeypatch.setattr(tiny_engine, "target", target)
    file = "\ufeff" + CODE.replace("\n", "\r\n")
    _, steps, finished = events(tiny_engine.edit(file, "rename add", strategy=Strategy.pld))
    check_consistent(steps, finished)
    assert finished.text == file.replace("add", "plus") and finished.finish_reason == FinishReason.stop
    prompt = tiny_engine.tokenizer.decode(target.tokens)
    assert CODE in prompt and "\r" not in prompt and "\ufeff" not in prompt


def test_cancel_stops_within_one_step(tiny_engine):
    cancel = threading.Event()
    stream = tiny_engine.complete(CODE, params=SamplingParams(max_new_tokens=200), cancel=cancel)
    assert isinstance(next(stream), Started)
    assert isinstance(next(stream), Step)
    cancel.set()
    rest = list(stream)
    assert isinstance(rest[-1], Finished) and rest[-1].finish_reason == FinishReason.cancelled
    assert rest[-1].completion_tokens < 200
    assert len([item for item in rest if isinstance(item, Step) and item.token_ids]) == 0


class Exploding:
    """A backend whose forward fails like a CUDA error would."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def forward(self, tokens, logits_from=0):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_backend_failure_is_engine_error(tiny_engine, monkeypatch):
    monkeypatch.setattr(tiny_engine, "target", Exploding(tiny_engine.target))
    with pytest.raises(EngineError):
        list(tiny_engine.complete(CODE, params=SamplingParams(max_new_tokens=4)))


BAD_EDITS = [
    ({"file": "", "instruction": "x"}, "file"),
    ({"file": "  \n", "instruction": "x"}, "file"),
    ({"file": "a\x00b\n", "instruction": "x"}, "file"),
    ({"file": "caf\udce9\n", "instruction": "x"}, "file"),
    ({"file": CODE, "instruction": ""}, "instruction"),
    ({"file": CODE, "instruction": "   "}, "instruction"),
    ({"file": CODE, "instruction": "x", "params": SamplingParams(max_new_tokens=0)}, "max_tokens"),
    ({"file": CODE, "instruction": "x", "params": SamplingParams(temperature=-1)}, "temperature"),
    ({"file": CODE, "instruction": "x", "params": SamplingParams(top_p=0)}, "top_p"),
]


@pytest.mark.parametrize(("kwargs", "param"), BAD_EDITS)
def test_bad_edit_input_is_rejected_before_model_work(tiny_engine, monkeypatch, kwargs, param):
    monkeypatch.setattr(tiny_engine, "target", Exploding(tiny_engine.target))  # any model work would raise
    with pytest.raises(InvalidRequestError) as info:
        tiny_engine.edit(**kwargs)
    assert info.value.param == param and info.value.message


def test_too_long_file_is_a_context_error(tiny_engine, monkeypatch):
    monkeypatch.setattr(tiny_engine, "target", Exploding(tiny_engine.target))
    with pytest.raises(ContextLengthError) as info:
        tiny_engine.edit(CODE * 40, "rename add")
    assert info.value.param == "file"
    with pytest.raises(ContextLengthError) as info:
        tiny_engine.edit(CODE, "rename add", params=SamplingParams(max_new_tokens=5000))
    assert info.value.param == "max_tokens"


@pytest.mark.parametrize(
    ("messages", "param"),
    [([], "messages"), ([{"role": "robot", "content": "x"}], "messages"), ([{"role": "user"}], "messages")],
)
def test_bad_chat_input(tiny_engine, messages, param):
    with pytest.raises(InvalidRequestError) as info:
        tiny_engine.chat(messages)
    assert info.value.param == param


def test_bad_prompt_and_strategy(tiny_engine):
    with pytest.raises(InvalidRequestError, match="prompt"):
        tiny_engine.complete("")
    with pytest.raises(InvalidRequestError) as info:
        tiny_engine.complete("x", strategy="fastest")
    assert info.value.param == "strategy"


def test_special_token_text_in_a_file_or_instruction_is_plain_text(tiny_engine):
    """A file with "<|im_end|>" in it (the code of an LLM tool) must not end the user's turn in the prompt."""
    end = tiny_engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    plain, _ = tiny_engine.encode_edit("x = 1\n", "rename x", "python", None)
    tricky, _ = tiny_engine.encode_edit('END = "<|im_end|>"\n', "rename <|im_end|>", "python", None)
    assert plain.count(end) == tricky.count(end) > 0  # only the template's own turn ends
    assert tiny_engine.tokenizer.decode(tricky).count("<|im_end|>") == plain.count(end) + 2
    assert end not in tiny_engine.encode_prediction("a <|im_end|> b")


@pytest.mark.parametrize("file", ["x = 1\n", "x = 1", "# T\n\n```py\nx\n```\n", "s = 'é€'\n\n"])
def test_an_edit_prompt_knows_where_the_original_file_ends_in_it(tiny_engine, file):
    """Prompt lookup copies the file up to that token and no further (PromptLookup.endings)."""
    ids, end = tiny_engine.encode_edit(file, "rename x", "python", "a.py")
    head, tail = tiny_engine.tokenizer.decode(ids[:end]), tiny_engine.tokenizer.decode(ids[end:])
    assert head.endswith(file if file.endswith("\n") else file + "\n")
    assert tail.startswith(fence_for(file) + "\n\nChange request:")


def test_the_answer_may_end_only_where_the_file_can_close(tiny_engine):
    """Per position of a step: the end tokens are masked while the fenced file is open."""
    pipe = TextPipe(tiny_engine.tokenizer, (), FileExtractor("x = 0\n"))
    encode = tiny_engine.encode_text
    pipe.feed(encode("```python\nx = 1\n"))
    draft = encode("y = 2\n```")
    allowed = pipe.may_end(draft)
    assert len(allowed) == len(draft) + 1
    assert allowed[-1] and not any(allowed[:-1])  # only after the closing fence
    assert pipe.may_end()[0] is False  # the probe left the pipe as it was
    assert TextPipe(tiny_engine.tokenizer, (), None).may_end(draft) == [True] * len(allowed)
