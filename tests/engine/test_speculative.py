"""The loop on tiny random models: lossless for every strategy, exact cache crops, sampling keeps p."""

from __future__ import annotations

import torch
from blazedit_client.protocol import Strategy
from blazedit_server.engine.drafters import LookupDrafter, ModelDrafter
from blazedit_server.engine.hf import HFBackend
from blazedit_server.engine.policy import DEFAULT_COSTS, Planner
from blazedit_server.engine.runner import Finished, SamplingParams, Step
from blazedit_server.engine.sampling import Sampler, accept_sampled, make_sampler, probabilities
from blazedit_server.engine.speculative import generate
from fixtures.scripted import ScriptedTarget
from fixtures.tiny import TEST_DEVICE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SPECULATIVE = [Strategy.pld, Strategy.draft, Strategy.multilayer]


def output(engine, prompt, strategy, max_new_tokens=16, **kwargs):
    items = list(engine.complete(prompt, strategy=strategy, params=SamplingParams(max_new_tokens), **kwargs))
    tokens = [t for item in items if isinstance(item, Step) for t in item.token_ids]
    return tokens, items[-1]


CODE_TEXT = st.lists(
    st.sampled_from([*"abcdefxyz_():=+-*/ \n\t0123456789'\"é漢🎉", "def ", "return ", "    "]),
    min_size=1,
    max_size=30,
).map("".join)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=CODE_TEXT)
def test_every_strategy_is_token_identical_to_regular(tiny_engine, self_engine, prompt):
    regular, finished = output(tiny_engine, prompt, Strategy.regular)
    reply = finished.text.replace("\x00", "")  # a random model may write NUL, which a prediction may not hold
    for strategy in SPECULATIVE:
        assert output(tiny_engine, prompt, strategy)[0] == regular, strategy
    assert output(self_engine, prompt, Strategy.multilayer)[0] == regular
    # the regular answer as the prediction: prompt lookup now proposes the right tokens and they are accepted
    assert output(tiny_engine, prompt, Strategy.pld, prediction=reply)[0] == regular
    # a prediction that is right, then wrong, then right again: copy mode, divergence, re-anchoring
    half = len(reply) // 2
    edited = reply[:half] + "zz" + reply[half + 1 :]
    for strategy in SPECULATIVE:
        assert output(tiny_engine, prompt, strategy, prediction=edited)[0] == regular, strategy


def test_accepted_drafts_come_from_every_layer(tiny_engine, self_engine):
    prompt = "def add(a, b):\n    return a + b\n"
    regular, finished = output(tiny_engine, prompt, Strategy.regular, max_new_tokens=30)
    tokens, done = output(tiny_engine, prompt, Strategy.pld, max_new_tokens=30, prediction=finished.text)
    assert tokens == regular and done.stats.layers["pld"].accepted > 10
    tokens, done = output(self_engine, prompt, Strategy.draft, max_new_tokens=30)
    assert tokens == regular and done.stats.layers["draft"].accepted > 10
    assert done.stats.target_passes < len(tokens)
    tokens, done = output(
        self_engine, prompt, Strategy.multilayer, max_new_tokens=30, prediction=finished.text
    )
    assert tokens == regular and done.stats.layers["pld"].accepted > 0


class Spy:
    """A backend wrapper that checks the cache length after every forward and crop."""

    def __init__(self, backend):
        self.backend = backend
        self.crops: list[int] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def forward(self, tokens, logits_from=0):
        return self.backend.forward(tokens, logits_from)

    def truncate(self, n):
        self.backend.truncate(n)
        assert self.backend.n_cached == n
        self.crops.append(n)


def test_cache_crop_keeps_exactly_the_accepted_length(self_engine):
    target, draft = Spy(self_engine.target), Spy(self_engine.draft)
    sampler = Sampler()
    prompt = self_engine.tokenizer.encode("x = 1\ny = 2\n", add_special_tokens=False)
    drafter = ModelDrafter(draft, sampler, LookupDrafter())
    planner = Planner("multilayer", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    seq = list(prompt)
    for result in generate(target, drafter, planner, prompt, sampler=sampler, eos=set(), max_new_tokens=40):
        seq += result.tokens
        assert target.n_cached == len(seq) - 1  # everything but the newest token, which the next step feeds
        assert draft.n_cached == len(drafter.cached) and drafter.cached == seq[: len(drafter.cached)]
    assert len(seq) == len(prompt) + 40 and target.crops


def test_redecoding_after_a_crop_gives_the_same_logits(tiny_pair):
    backend = HFBackend.load(tiny_pair.target.hf_dir, device=TEST_DEVICE, dtype="float32")
    tokens = list(range(40, 60))
    full = backend.forward(tokens)
    backend.truncate(12)
    assert backend.n_cached == 12
    again = backend.forward(tokens[12:])
    torch.testing.assert_close(again, full[12:], rtol=1e-4, atol=1e-4)


def total_variation(counts: torch.Tensor, p: torch.Tensor) -> float:
    return float((counts / counts.sum() - p).abs().sum() / 2)


def test_speculative_sampling_keeps_the_target_distribution(tiny_engine):
    """First output token after a draft of one token, many times: its frequencies must match p, not q."""
    context = tiny_engine.tokenizer.encode("def f(x):\n    return", add_special_tokens=False)
    target_logits, draft_logits = [], []
    for backend, out in ((tiny_engine.target, target_logits), (tiny_engine.draft, draft_logits)):
        backend.reset()
        out.append(backend.forward(context, logits_from=len(context) - 1)[0])
        backend.reset()
    sampler = make_sampler(temperature=1.0, top_p=1.0, seed=0)
    p = probabilities(target_logits[0][None], sampler)[0]
    q = probabilities(draft_logits[0][None], sampler)[0]
    # the row after the draft token does not matter for the first token: reuse p's logits
    logits = torch.stack([target_logits[0], target_logits[0]])
    n = 5000
    with_q, without_q = torch.zeros_like(p), torch.zeros_like(p)
    drafts = torch.multinomial(q, n, replacement=True, generator=sampler.generator).tolist()
    for x in drafts:
        m, token = accept_sampled([x], q[None], logits, sampler)
        with_q[x if m == 1 else token] += 1
        m, token = accept_sampled([7], None, logits, sampler)  # a prompt-lookup token: no q
        without_q[7 if m == 1 else token] += 1
    direct = torch.bincount(
        torch.multinomial(p, n, replacement=True, generator=sampler.generator), minlength=len(p)
    )
    noise = total_variation(direct.float(), p)  # what n samples of p itself miss p by
    assert total_variation(with_q, p) < 2 * noise
    assert total_variation(without_q, p) < 2 * noise
    assert total_variation(q * n, p) > 4 * noise


def test_sampled_requests_are_seeded_and_consistent(tiny_engine, self_engine):
    params = SamplingParams(max_new_tokens=20, temperature=0.8, top_p=0.9, seed=3)
    for engine in (tiny_engine, self_engine):
        for strategy in Strategy:
            first = list(engine.complete("def f():", strategy=strategy, params=params))
            again = list(engine.complete("def f():", strategy=strategy, params=params))
            assert isinstance(first[-1], Finished) and first[-1].text == again[-1].text
            assert first[-1].completion_tokens == sum(len(s.token_ids) for s in first[1:-1])
    _, done = output(self_engine, "def f():", Strategy.draft, max_new_tokens=20)
    assert done.stats.layers["draft"].accepted > 0


def test_end_tokens_are_masked_while_the_answer_may_not_end(self_engine):
    """An edit's answer may not end while its file is open: with `may_end` false, no strategy emits an end
    token, and all of them still agree."""
    prompt = self_engine.tokenizer.encode("x = 1\ny = 2\n", add_special_tokens=False)

    def decode(strategy: str, eos: set[int], may_end) -> list[int]:
        sampler = Sampler()
        drafter = (
            LookupDrafter()
            if strategy == "pld"
            else ModelDrafter(self_engine.draft, sampler, LookupDrafter())
        )
        planner = Planner(strategy, DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
        steps = generate(self_engine.target, drafter, planner, prompt, sampler=sampler, eos=eos,
                         max_new_tokens=24, may_end=may_end)  # fmt: skip
        return [token for result in steps for token in result.tokens]

    anywhere = lambda draft: [True] * (len(draft) + 1)  # noqa: E731
    nowhere = lambda draft: [False] * (len(draft) + 1)  # noqa: E731
    plain = decode("regular", set(), anywhere)
    end = plain[3]  # make the fourth token an end token
    assert decode("regular", {end}, anywhere) == plain[: plain.index(end)]
    masked = decode("regular", {end}, nowhere)
    assert len(masked) == 24 and end not in masked
    for strategy in ("pld", "multilayer"):
        assert decode(strategy, {end}, nowhere) == masked


class Reuses(Spy):
    """A Spy that also counts the positions the draft model takes from its cache instead of reading them."""

    def __init__(self, backend):
        super().__init__(backend)
        self.reused = 0

    def reuse(self, start, count):
        self.backend.reuse(start, count)
        self.reused += count


def test_the_draft_model_takes_copied_runs_from_its_cache_in_the_loop(tiny_engine):
    # an edit: the output copies 60 tokens of the prompt, writes 3 of its own, then copies 60 more
    prompt = list(range(10, 150))
    answer = [*prompt[5:65], 300, 301, 302, *prompt[68:128]]
    target = ScriptedTarget(prompt + answer, tiny_engine.target.vocab_size)
    draft = Reuses(tiny_engine.draft)
    drafter = ModelDrafter(draft, Sampler(), LookupDrafter())
    planner = Planner("multilayer", DEFAULT_COSTS, DEFAULT_COSTS)  # a draft pass as dear as a target pass
    seq = list(prompt)
    for result in generate(
        target, drafter, planner, prompt, sampler=Sampler(), eos=set(), max_new_tokens=123
    ):
        seq += result.tokens
        assert draft.n_cached == len(drafter.cached) and drafter.cached == seq[: len(drafter.cached)]
    assert seq[len(prompt) :] == answer
    assert draft.reused >= 16 and drafter.passes > 0
