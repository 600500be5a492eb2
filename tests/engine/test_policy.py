"""Cost-aware draft lengths: the one policy function, the cost model and the acceptance estimate."""

from __future__ import annotations

import pytest
from blazedit_server.engine.policy import (
    DEFAULT_COSTS,
    Costs,
    Lengths,
    Planner,
    Rate,
    best_length,
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
    speed = [expected_tokens(j, 0.85) / CPU_TARGET(j + 1) for j in range(65)]
    assert speed[k] == max(speed)


def test_rate_is_the_geometric_maximum_likelihood_with_a_prior():
    rate = Rate()
    assert rate.value == pytest.approx(0.8)
    rate.observe(drafted=10, accepted=10)
    rate.observe(drafted=0, accepted=0)  # nothing drafted: no evidence
    assert rate.value == pytest.approx(14 / 15)
    rate.observe(drafted=10, accepted=0)
    assert rate.value == pytest.approx(14 / 16)


def test_planner_lengths_per_strategy():
    draft_costs = DEFAULT_COSTS.scaled(0.3)
    assert Planner("regular", DEFAULT_COSTS, draft_costs).lengths(100) == Lengths(0)
    assert Planner("pld", DEFAULT_COSTS, draft_costs).lengths(100).per_round == 0
    lengths = Planner("multilayer", DEFAULT_COSTS, draft_costs).lengths(100)
    assert lengths.total > 0 and lengths.per_round > 0 and not lengths.copy
    assert Planner("pld", DEFAULT_COSTS, draft_costs).lengths(3).total <= 2  # room for the target's own token
    planner = Planner("pld", DEFAULT_COSTS, draft_costs)
    before = planner.lengths(100).total
    for _ in range(20):
        planner.observe(drafted=8, accepted=0)
    assert planner.lengths(100).total < before


def test_a_speculative_strategy_keeps_drafting_so_its_rate_can_recover():
    flat = Costs((1, 2), (1.0, 2.0))  # a k-token pass costs k one-token passes: drafting looks unprofitable
    for strategy in ("pld", "draft", "multilayer"):
        planner = Planner(strategy, flat, flat)
        for _ in range(10):
            assert planner.lengths(100).total >= 1
            planner.observe(drafted=1, accepted=0)
        assert planner.lengths(1).total == 0  # no room for a draft beside the target's own token
    assert Planner("multilayer", flat, flat).lengths(100).per_round >= 1  # the draft model still gets copies
    assert Planner("regular", flat, flat).lengths(100).total == 0


def test_multilayer_copies_directly_while_the_target_accepts_whole_copied_runs():
    planner = Planner("multilayer", DEFAULT_COSTS, DEFAULT_COSTS.scaled(0.3))
    planner.lengths(100)
    planner.observe(drafted=12, accepted=12, rounds=[(11, 11)], copied=11)
    assert planner.lengths(100).copy
    planner.observe(drafted=20, accepted=20, copied=20)
    assert planner.lengths(100).copy
    planner.observe(drafted=20, accepted=5, copied=5)  # the output diverged: the draft model checks again
    assert not planner.lengths(100).copy
    planner.observe(drafted=6, accepted=6, rounds=[(2, 2)], copied=2)  # written by the draft model
    assert not planner.lengths(100).copy


def test_measure_times_every_size_of_a_backend(tiny_engine):
    costs = measure(tiny_engine.target, sizes=(1, 4, 16), context=8, repeats=1)
    assert costs.sizes == (1, 4, 16)
    assert all(s > 0 for s in costs.seconds) and list(costs.seconds) == sorted(costs.seconds)
    assert tiny_engine.target.n_cached == 0  # the cache is left empty for the next request
