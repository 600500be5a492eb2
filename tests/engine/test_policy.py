"""Cost-aware draft lengths: the one policy function, the cost model and the acceptance estimate."""

from __future__ import annotations

import pytest
import torch
from blazedit_server.engine import policy
from blazedit_server.engine.drafters import DRAFT, PLD, Draft, confidence_bucket
from blazedit_server.engine.policy import (
    DEFAULT_COSTS,
    MAX_DRAFT,
    Costs,
    Lengths,
    Outlook,
    Planner,
    Rate,
    best_length,
    candidate_lengths,
    expected_tokens,
    measure,
)

# the 1.5B target on this CPU class (issue 3): 343 ms for 1 token, 768 ms for 16, 1056 ms for 32
CPU_TARGET = Costs((1, 16, 32), (0.343, 0.768, 1.056))


def test_costs_interpolate_and_extrapolate():
    assert CPU_TARGET(16) == pytest.approx(0.768)
    assert CPU_TARGET(24) == pytest.approx((0.768 + 1.056) / 2)
    assert CPU_TARGET(48) == pytest.approx(1.056 + 16 * (1.056 - 0.768) / 16)
    assert CPU_TARGET(2) > CPU_TARGET(1)


def test_expected_tokens_is_the_geometric_sum():
    assert expected_tokens(0, 0.9) == 1
    assert expected_tokens(3, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125)


def test_no_draft_when_nothing_is_accepted():
    assert best_length(CPU_TARGET, 0.0, 64) == 0


def test_longer_drafts_for_higher_acceptance():
    lengths = [best_length(CPU_TARGET, rate, 64) for rate in (0.3, 0.6, 0.8, 0.95, 0.99)]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert best_length(CPU_TARGET, 0.99, 64) >= 32


def test_free_passes_mean_the_longest_draft():
    flat = Costs((1, 64), (1.0, 1.0))
    assert best_length(flat, 0.5, 40) == 40


def test_drafting_cost_shortens_drafts():
    assert best_length(CPU_TARGET, 0.8, 64, per_token=0.1) < best_length(CPU_TARGET, 0.8, 64)


def test_choice_maximises_tokens_per_second():
    k = best_length(CPU_TARGET, 0.85, 64)
    speed = {j: expected_tokens(j, 0.85) / CPU_TARGET(j + 1) for j in candidate_lengths(CPU_TARGET, 64)}
    assert speed[k] == max(speed.values())


def test_steps_are_planned_at_measured_sizes_and_the_cap():
    assert candidate_lengths(CPU_TARGET, 64) == [0, 15, 31, 64]
    assert candidate_lengths(CPU_TARGET, 20) == [0, 15, 20]
    assert candidate_lengths(CPU_TARGET, 0) == [0]


# llama.cpp, 1.5B, 2 cores: rows run in blocks of 16, so 16 tokens cost less than 15 (ms)
BLOCKED = Costs((1, 4, 8, 12, 15, 16, 24, 32), (33, 92, 209, 257, 302, 248, 377, 418))


def test_a_wider_pass_that_costs_less_is_taken():
    assert best_length(BLOCKED, 0.95, 32, first=0.9) == 15  # 16 tokens: cheaper than 15, and more of them
    assert 14 not in {best_length(BLOCKED, rate, 32, first=0.9) for rate in (0.5, 0.8, 0.9, 0.95, 0.99)}


def test_rate_is_the_geometric_maximum_likelihood_with_a_prior():
    rate = Rate()
    assert rate.value == pytest.approx(0.8)
    rate.observe(drafted=10, accepted=10)
    rate.observe(drafted=0, accepted=0)  # nothing drafted: no evidence
    assert rate.value == pytest.approx(14 / 15)
    rate.observe(drafted=10, accepted=0)
    assert rate.value == pytest.approx(14 / 16)


CONFIRMED_ANCHOR = Outlook(evidence=40, copyable=200)  # a long copied run: the output follows the file
FRESH_ANCHOR = Outlook(evidence=1, copyable=200)  # re-found by one token after an edit


def test_expected_tokens_of_a_copy_hinge_on_its_first_token():
    assert expected_tokens(3, 0.9, first=0.9) == pytest.approx(expected_tokens(3, 0.9))
    assert expected_tokens(3, 0.9, first=0.0) == 1
    assert expected_tokens(2, 0.9, first=0.5) == pytest.approx(1 + 0.5 * (1 + 0.9))


def test_planner_lengths_per_strategy():
    draft_costs = DEFAULT_COSTS.scaled(0.3)
    assert Planner("regular", DEFAULT_COSTS, draft_costs).lengths(100, CONFIRMED_ANCHOR) == Lengths(0)
    pld = Planner("pld", DEFAULT_COSTS, draft_costs)
    assert pld.lengths(100, CONFIRMED_ANCHOR).total >= 16
    assert pld.lengths(100, Outlook(evidence=40, copyable=5)).total == 5  # no more than the anchor offers
    assert pld.lengths(3, CONFIRMED_ANCHOR).total <= 2  # room for the target's own token
    assert pld.lengths(100, Outlook()) == Lengths(0)  # prompt lookup has nothing
    draft = Planner("draft", DEFAULT_COSTS, draft_costs).lengths(100, CONFIRMED_ANCHOR)
    assert draft.total > 0 and draft.per_round == 0 and not draft.copy
    multilayer = Planner("multilayer", DEFAULT_COSTS, draft_costs)
    assert multilayer.lengths(100, CONFIRMED_ANCHOR).copy  # copying to the target directly
    lengths = multilayer.lengths(100, Outlook(behind=1))  # nothing to copy: the draft model writes
    assert lengths.total > 0 and lengths.per_round > 0 and not lengths.copy


def test_a_fresh_anchor_earns_a_shorter_copy_than_a_confirmed_one():
    planner = Planner("pld", DEFAULT_COSTS, DEFAULT_COSTS)
    assert 0 < planner.lengths(100, FRESH_ANCHOR).total < planner.lengths(100, CONFIRMED_ANCHOR).total


def test_plain_decoding_when_a_pass_over_k_tokens_costs_k_passes():
    linear = Costs((1, 64), (1.0, 64.0))  # llama.cpp on a small CPU comes close to this for small k
    for strategy in ("pld", "multilayer"):
        planner = Planner(strategy, linear, linear.scaled(0.6))
        assert planner.lengths(100, FRESH_ANCHOR) == Lengths(0)
        assert planner.lengths(100, Outlook(behind=1)) == Lengths(0)


def test_draft_always_drafts_so_its_rate_is_learnt():
    """Strategy draft is assisted decoding by definition: a pessimistic prior must not turn it into plain
    decoding that never observes how often the draft model is right."""
    linear = Costs((1, 64), (1.0, 64.0))
    planner = Planner("draft", linear, linear.scaled(0.6))
    assert planner.lengths(100, Outlook(behind=1)).total >= 1
    assert planner.lengths(1, Outlook(behind=1)) == Lengths(0)  # no room beside the target's own token
    planner = Planner("draft", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    before = planner.lengths(100, Outlook(behind=1))
    for _ in range(30):
        planner.lengths(100, Outlook(behind=1))
        planner.observe(written(4, confidence=0.6), accepted=4)
    after = planner.lengths(100, Outlook(behind=1))
    bucket = confidence_bucket(0.6)
    assert after.keep[bucket] > 0.9 > before.keep[bucket]
    assert after.stop_below > before.stop_below  # faster steps: a marginal token must survive more often


def written(n: int, confidence: float, copied: int = 0) -> Draft:
    """A draft of `copied` prompt-lookup tokens then `n` tokens the draft model wrote with `confidence`."""
    return Draft(
        tokens=list(range(copied + n)),
        origins=[PLD] * copied + [DRAFT] * n,
        written=[(copied + i, confidence) for i in range(n)],
    )


def test_the_draft_model_may_write_up_to_the_longest_draft_and_stops_by_survival():
    planner = Planner("draft", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    lengths = planner.lengths(100, Outlook(behind=1))
    assert lengths.total == MAX_DRAFT
    assert planner.lengths(10, Outlook(behind=1)).total == 9  # room for the target's own token
    assert 0 < lengths.stop_below < 1
    assert list(lengths.keep) == sorted(lengths.keep)  # surer tokens survive more often, a priori


def test_survival_is_learnt_per_confidence_bucket_from_judged_tokens_only():
    planner = Planner("draft", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    sure, unsure = confidence_bucket(0.95), confidence_bucket(0.4)
    before = planner.lengths(100, Outlook(behind=1)).keep
    for _ in range(10):
        planner.lengths(100, Outlook(behind=1))
        # the first of three unsure tokens is rejected: the two after it were never judged
        own = [(0, 0.95), (1, 0.4), (2, 0.4), (3, 0.4)]
        planner.observe(Draft([1, 2, 3, 4], [DRAFT] * 4, written=own), accepted=1)
    after = planner.lengths(100, Outlook(behind=1)).keep
    assert after[sure] > before[sure] and after[unsure] < before[unsure]
    assert planner.written[unsure].rejections == pytest.approx(before_rejections(unsure) + 10)


def before_rejections(bucket: int) -> float:
    return Planner("draft", DEFAULT_COSTS, DEFAULT_COSTS).written[bucket].rejections


def test_first_token_failures_are_learnt_per_evidence_bucket():
    planner = Planner("pld", DEFAULT_COSTS, DEFAULT_COSTS)
    fresh, confirmed = planner.lengths(100, FRESH_ANCHOR).total, planner.lengths(100, CONFIRMED_ANCHOR).total
    for _ in range(10):
        planner.lengths(100, FRESH_ANCHOR)
        planner.observe(Draft(list(range(8)), [PLD] * 8), accepted=0)
    assert planner.lengths(100, FRESH_ANCHOR).total < fresh
    assert planner.lengths(100, CONFIRMED_ANCHOR).total == confirmed


def test_how_far_copies_run_is_learnt_per_evidence_bucket():
    """Long copies from confirmed anchors must not make copies re-found after an edit look long too."""
    planner = Planner("pld", BLOCKED, BLOCKED)
    fresh = Outlook(evidence=1, copyable=200)
    assert planner.lengths(100, fresh) == Lengths(0)  # a coin flip is not worth a copy at these costs
    for _ in range(20):
        planner.lengths(100, CONFIRMED_ANCHOR)
        planner.observe(Draft(list(range(31)), [PLD] * 31), accepted=31)
    assert planner.lengths(100, fresh) == Lengths(0)


def test_the_draft_model_is_not_worth_it_when_it_must_first_read_a_long_copied_stretch():
    planner = Planner("multilayer", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    assert planner.lengths(100, Outlook(behind=1)).total > 0
    assert planner.lengths(100, Outlook(behind=200)) == Lengths(0)  # plain decoding for this step


def test_the_draft_models_rates_are_learnt_from_its_steps():
    planner = Planner("multilayer", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    before = planner.lengths(100, Outlook(behind=1))
    for _ in range(20):
        planner.lengths(100, Outlook(behind=1))
        draft = written(2, confidence=0.8)
        draft.rounds = [(4, 0), (4, 0)]
        planner.observe(draft, accepted=0)
    after = planner.lengths(100, Outlook(behind=1))
    assert after.per_round < before.per_round
    bucket = confidence_bucket(0.8)
    assert planner.written[bucket].value < before.keep[bucket]


def test_measure_times_every_size_of_a_backend(tiny_engine):
    costs = measure(tiny_engine.target, sizes=(1, 4, 16), context=8, repeats=1)
    assert costs.sizes == (1, 4, 16)
    assert all(s > 0 for s in costs.seconds)
    assert tiny_engine.target.n_cached == 0  # the cache is left empty for the next request


class BurstyClock:
    """A backend on a fake clock: a pass over n tokens takes n ms, except the two passes from the first one of
    `burst_at` tokens on, which another process slows tenfold."""

    def __init__(self, burst_at: int) -> None:
        self.now, self.burst_at = 0.0, burst_at
        self.slowed: int | None = None  # passes left in the burst, once it began
        self.n_cached = 0

    def perf_counter(self) -> float:
        return self.now

    def reset(self) -> None:
        self.n_cached = 0

    def truncate(self, n: int) -> None:
        self.n_cached = min(self.n_cached, n)

    def forward(self, tokens, logits_from: int = 0) -> torch.Tensor:
        if len(tokens) == self.burst_at and self.slowed is None:
            self.slowed = 2
        slow = 10 if self.slowed else 1
        if self.slowed:
            self.slowed -= 1
        self.now += len(tokens) * 1e-3 * slow
        self.n_cached += len(tokens)
        return torch.zeros(len(tokens) - logits_from, 4)


def test_measure_keeps_a_burst_of_load_out_of_the_costs(monkeypatch):
    backend = BurstyClock(burst_at=4)
    monkeypatch.setattr(policy, "time", backend)
    costs = measure(backend, sizes=(1, 4, 16), context=8, repeats=2)
    assert costs.seconds == pytest.approx((1e-3, 4e-3, 16e-3))


def test_the_answers_opening_is_copied_even_where_copies_must_earn_their_cost():
    """llama.cpp-like costs, where k tokens cost ~k one-token passes: an anchor with a few tokens of evidence
    is not worth a copy, the same anchor at the answer's opening is."""
    planner = Planner("pld", BLOCKED, BLOCKED)
    assert planner.lengths(100, Outlook(evidence=4, copyable=200)) == Lengths(0)
    assert planner.lengths(100, Outlook(evidence=4, copyable=200, opening=True)).total >= 15


def test_the_first_copy_at_the_opening_is_long():
    """Opening copies run to the first edit (dev sets: median 140 tokens): with a llama.cpp calibration where
    16 tokens cost 3.2 times 4, the first step copies 15 tokens or more (a continuation prior of 0.95: 3)."""
    costs = Costs((1, 4, 8, 12, 16, 32, 64), (0.032, 0.092, 0.21, 0.26, 0.29, 0.44, 0.75))
    planner = Planner("pld", costs, costs)
    assert planner.lengths(500, Outlook(evidence=1, copyable=200, opening=True)).total >= 15
