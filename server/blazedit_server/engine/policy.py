"""Cost-aware draft lengths.

A forward pass over n tokens is not free on a CPU (the 1.5B target: about 343 ms for 1 token, 768 ms for 16,
1056 ms for 32), so the longest draft is not the fastest. `Costs` holds T(n), measured for each model at load
(`calibrate`); `best_length` picks the draft length k that maximises expected tokens per second for the
acceptance rate seen so far in the request:

    E[tokens | k] = 1 + a + a^2 + ... + a^k   (draft token i survives if all before it did, each with rate a;
                                               the 1 is the target's own token after the accepted run)
    k* = argmax_k  E[tokens | k] / (T(k + 1) + c * k)     c: the cost of drafting one token

`Rate` estimates a from a request's verifications: under that geometric model the maximum-likelihood rate is
accepted / (accepted + rejections), started from a small prior so the first steps are sane.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .backend import Backend
from .drafters import Lengths

CALIBRATION_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Costs:
    """Seconds (or relative units) of one forward pass over n tokens, linear between measured sizes."""

    sizes: tuple[int, ...]
    seconds: tuple[float, ...]

    def __call__(self, n: int) -> float:
        i = bisect.bisect_left(self.sizes, n)
        if i < len(self.sizes) and self.sizes[i] == n:
            return self.seconds[i]
        lo, hi = (i - 1, i) if 0 < i < len(self.sizes) else ((0, 1) if i == 0 else (-2, -1))
        slope = (self.seconds[hi] - self.seconds[lo]) / (self.sizes[hi] - self.sizes[lo])
        return max(self.seconds[lo] + slope * (n - self.sizes[lo]), 1e-9)

    def scaled(self, factor: float) -> Costs:
        return Costs(self.sizes, tuple(s * factor for s in self.seconds))


# Without calibration: the shape measured for the 1.5B target on this CPU class, in units of T(1).
DEFAULT_COSTS = Costs(CALIBRATION_SIZES, tuple(1.0 + (n - 1) / 16 for n in CALIBRATION_SIZES))


def expected_tokens(k: int, rate: float) -> float:
    return sum(rate**i for i in range(k + 1))


def best_length(costs: Costs, rate: float, max_len: int, per_token: float = 0.0) -> int:
    """The draft length in [0, max_len] that maximises expected tokens per second (module docstring)."""
    return max(range(max_len + 1), key=lambda k: expected_tokens(k, rate) / (costs(k + 1) + per_token * k))


@dataclass
class Rate:
    accepted: float = 4.0  # prior: 4 accepted, 1 rejection -> 0.8
    rejections: float = 1.0

    def observe(self, drafted: int, accepted: int) -> None:
        if drafted:
            self.accepted += accepted
            self.rejections += accepted < drafted

    @property
    def value(self) -> float:
        return self.accepted / (self.accepted + self.rejections)


def measure(
    backend: Backend, sizes: Sequence[int] = CALIBRATION_SIZES, context: int = 64, repeats: int = 2
) -> Costs:
    """Time forward passes of each size after a short context, the way the loop runs them. The fastest of
    `repeats` runs, made non-decreasing in n, damps noise from other processes."""
    backend.reset()
    backend.forward([0] * context, logits_from=context - 1)
    backend.forward([0], logits_from=0)  # warm-up
    seconds = [min(time_forward(backend, context, n) for _ in range(repeats)) for n in sizes]
    backend.reset()
    return Costs(tuple(sizes), tuple(itertools.accumulate(seconds, max)))


def time_forward(backend: Backend, context: int, n: int) -> float:
    backend.truncate(context)
    begin = time.perf_counter()
    backend.forward([0] * n, logits_from=0)
    return time.perf_counter() - begin


MAX_DRAFT = 64  # tokens the target verifies at most in one pass
MAX_ROUND = 32  # prompt-lookup tokens the draft model checks at most in one pass
MIN_COPY = 8  # a fully accepted step with this many copied tokens starts a copied stretch


class Planner:
    """Per request: the lengths of the next step, from the model costs and the acceptance seen so far.

    pld: the prompt-lookup length. draft: the draft length (each drafted token costs one draft pass).
    multilayer: first the run that prompt lookup offers the draft model per draft pass (priced with the
    draft's costs and the rate at which the draft model keeps copied tokens), then the total draft length
    (priced with the target's costs plus the resulting draft cost per drafted token). While the output copies
    the reference (the target just accepted a whole draft with a long copied run), checking copied tokens with
    the draft model costs a draft pass and saves nothing, so multilayer sends prompt lookup to the target
    directly until the target rejects a token.
    """

    def __init__(self, strategy: str, target: Costs, draft: Costs) -> None:
        self.strategy = strategy
        self.target, self.draft = target, draft
        self.target_rate, self.round_rate, self.copy_rate = Rate(), Rate(), Rate()
        self.last = Lengths(0)
        self.copying = False

    def lengths(self, room: int) -> Lengths:
        """The budget of a step that may add at most `room` tokens.

        A speculative strategy always drafts at least one token: a step that drafts nothing observes nothing,
        so a pessimistic start (a noisy calibration, an early rejection) would otherwise freeze the rates and
        turn the rest of the request into plain decoding."""
        cap = min(MAX_DRAFT, room - 1)
        lengths = self.choose(cap)
        if self.strategy != "regular" and cap > 0 and lengths.total == 0:
            lengths = replace(lengths, total=1)
        self.last = lengths
        return self.last

    def choose(self, cap: int) -> Lengths:
        if self.strategy == "regular" or cap <= 0:
            return Lengths(0)
        if self.strategy == "pld":
            return Lengths(best_length(self.target, self.target_rate.value, cap))
        if self.strategy == "draft":
            return Lengths(best_length(self.target, self.target_rate.value, cap, per_token=self.draft(1)))
        if self.copying:
            return Lengths(best_length(self.target, self.copy_rate.value, cap), copy=True)
        # At least one copied token per draft pass, for the same reason as in `lengths`: the round rate must
        # keep being observed, or multilayer freezes into plain draft-model decoding and never copies.
        per_round = max(1, best_length(self.draft, self.round_rate.value, MAX_ROUND))
        per_token = self.draft(per_round + 1) / expected_tokens(per_round, self.round_rate.value)
        return Lengths(best_length(self.target, self.target_rate.value, cap, per_token=per_token), per_round)

    def observe(
        self, drafted: int, accepted: int, rounds: Sequence[tuple[int, int]] = (), copied: int = 0
    ) -> None:
        """A verified step: `accepted` of `drafted` tokens kept, `copied` of them from prompt lookup."""
        (self.copy_rate if self.last.copy else self.target_rate).observe(drafted, accepted)
        for proposed, kept in rounds:
            self.round_rate.observe(proposed, kept)
        self.copying = self.strategy == "multilayer" and accepted == drafted and copied >= MIN_COPY
