"""Cost-aware draft lengths.

A forward pass over n tokens is not free on a CPU (the 1.5B target on 2 cores: 0.25 s for 1 token, 0.34 s for
16, 0.56 s for 32 on transformers fp32; 33 ms, 248 ms and 418 ms on llama.cpp), so the longest draft is not
the fastest. `Costs` holds T(n), measured for each model at load (`calibrate`); `best_length` picks the draft
length k, among the sizes measured (`candidate_lengths`), that maximises expected tokens per second for the
acceptance seen so far in the request:

    E[tokens | k] = 1 + f (1 + a + a^2 + ... + a^(k-1))   (the first draft token survives with rate f, each
                                                           later one, if all before it did, with rate a; the
                                                           1 is the target's own token after the accepted run)
    k* = argmax_k  E[tokens | k] / (T(k + 1) + c * k)     c: the cost of drafting one token

For tokens written by the draft model f = a (a geometric run). A prompt-lookup copy is different: it is right
or wrong from its first token (is the anchor where the output is?), and once right it runs until the next
edit, so f is estimated per bucket of anchor evidence, and a, per bucket too, from the tokens after the first.

`Rate` estimates a rate from a request's verifications: under the geometric model the maximum-likelihood rate
is accepted / (accepted + rejections), started from a prior so the first steps are sane.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .backend import Backend
from .drafters import CONFIDENCE_BUCKETS, Draft, Lengths, Outlook, confidence_bucket

# Pass sizes timed at load, and the sizes a step is planned at. Between them a pass can cost more than at the
# next measured size: llama.cpp's CPU kernels take rows in blocks (1.5B, 2 cores: T(7) 153 ms, T(8) 209,
# T(15) 302, T(16) 248, T(31) 468, T(32) 418), so interpolation would misprice every size it did not time.
CALIBRATION_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64)


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


def expected_tokens(k: int, rate: float, first: float | None = None) -> float:
    first = rate if first is None else first
    return 1.0 + first * sum(rate**i for i in range(k))


def candidate_lengths(costs: Costs, max_len: int) -> list[int]:
    """The draft lengths a step is priced at: those whose pass (k + 1 tokens) was timed, none, and max_len
    (a drafter that has no more to offer)."""
    return sorted({0, max_len} | {n - 1 for n in costs.sizes if 0 < n - 1 <= max_len})


def best_length(
    costs: Costs, rate: float, max_len: int, per_token: float = 0.0, first: float | None = None
) -> int:
    """The candidate draft length up to max_len that maximises expected tokens per second (module
    docstring)."""
    return max(
        candidate_lengths(costs, max_len),
        key=lambda k: expected_tokens(k, rate, first) / (costs(k + 1) + per_token * k),
    )


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
    """Time forward passes of each size after a short context, the way the loop runs them; a wider pass may
    cost less (CALIBRATION_SIZES). Each of `repeats` rounds times every size once and a size keeps its fastest
    round: a burst of load from another process slows the passes inside it, which would be both runs of a
    size timed twice in a row, and one of its runs when the rounds are a few seconds apart."""
    backend.reset()
    backend.forward([0] * context, logits_from=context - 1)
    backend.forward([0], logits_from=0)  # warm-up
    rounds = [[time_forward(backend, context, n) for n in sizes] for _ in range(repeats)]
    backend.reset()
    return Costs(tuple(sizes), tuple(map(min, zip(*rounds, strict=True))))


def time_forward(backend: Backend, context: int, n: int) -> float:
    backend.truncate(context)
    begin = time.perf_counter()
    backend.forward([0] * n, logits_from=0)[-1, -1].item()  # reading a logit waits for a GPU's kernels
    return time.perf_counter() - begin


MAX_DRAFT = 64  # tokens the target verifies at most in one pass
MAX_ROUND = 32  # prompt-lookup tokens the draft model checks at most in one pass
# Whether a copy's first token is right is estimated per bucket of anchor evidence (Outlook.evidence): an
# anchor re-found by a short n-gram after an edit is right about half the time on the dev sets, one confirmed
# by a long copied run almost always, one found at the answer's opening always; once right, a copy runs on
# (run_priors). Those are the priors.
EVIDENCE_BUCKETS = (2, 4, 8, 16, 32)
CONFIRMED = 8  # evidence from which an anchor counts as confirmed
OPENING = len(EVIDENCE_BUCKETS) + 1  # the bucket after the evidence buckets: the answer's opening


def copy_priors() -> list[Rate]:
    """Per evidence bucket, then at OPENING one for an anchor at the answer's opening (Anchor.opening)."""
    evidence = [Rate(9.0, 1.0) if low >= CONFIRMED else Rate(1.0, 1.0) for low in (0, *EVIDENCE_BUCKETS)]
    return [*evidence, Rate(19.0, 1.0)]


def run_priors() -> list[Rate]:
    """How far a right copy runs on, per bucket as copy_priors: ~20 tokens (0.95) after an edit; from the
    answer's opening to its first edit, 8 to 490 tokens on 25 dev-set edits (median 140), so 0.975 there: a
    long first copy at once, and still short of the file where a rewrite starts early."""
    return [*(Rate(19.0, 1.0) for _ in range(OPENING)), Rate(39.0, 1.0)]


def written_priors() -> list[Rate]:
    """Per confidence bucket, a weak prior that the target keeps what the draft model wrote a bit more often
    than the draft model's own probability says (greedy acceptance is agreement on the argmax)."""
    uppers = (*CONFIDENCE_BUCKETS, 1.0)
    return [Rate(2.0 * upper, 2.0 * (1.0 - upper) + 0.1) for upper in uppers]


def evidence_bucket(outlook: Outlook) -> int:
    if outlook.opening:
        return OPENING
    return bisect.bisect_right(EVIDENCE_BUCKETS, outlook.evidence)


@dataclass(frozen=True)
class Option:
    lengths: Lengths
    speed: float  # expected tokens per second of the step


class Planner:
    """Per request: the lengths of the next step, from the model costs and the acceptance seen so far.

    Each step prices what the drafter offers (`Outlook`) and takes the fastest option:
    - plain decoding: 1 token per T(1);
    - a copy (pld, multilayer): prompt lookup drafts for the target directly, its length priced with the rate
      of the anchor's evidence bucket (or of the answer's opening);
    - the draft model (draft, multilayer): first the run that prompt lookup offers the draft model per draft
      pass (multilayer), priced with the draft's costs and the rate at which it keeps copied tokens, then the
      total draft length, priced with the target's costs plus the resulting cost per drafted token, plus the
      draft pass over what the draft model has not read yet (after a copied stretch). The draft model may
      write up to the longest draft: it stops where one more token, weighted by the chance that the whole
      draft survives, yields fewer tokens per second than the step as priced (`Lengths.stop_below`), with the
      survival of each token it writes learnt per bucket of its confidence (`Lengths.keep`).
    So multilayer copies straight to the target where the output copies the file, and lets the draft model
    write where the output departs from it, when that pays for the draft passes.
    """

    def __init__(self, strategy: str, target: Costs, draft: Costs) -> None:
        self.strategy = strategy
        self.target, self.draft = target, draft
        # a copy's first token, and how long a right copy runs on, are learnt per evidence bucket: a long copy
        # from the answer's opening says nothing of how far a copy re-found after an edit goes (dev sets: ~100
        # tokens on one-line fixes, ~20 on rewrites)
        self.copy_first = copy_priors()
        self.copy_rate = run_priors()
        self.target_rate, self.round_rate = Rate(), Rate()
        self.written = written_priors()
        # what one more drafted token adds to a verification, on average over the longest drafts
        self.wider = (target(MAX_DRAFT + 1) - target(2)) / (MAX_DRAFT - 1)
        self.last = Lengths(0)
        self.last_bucket = 0

    def lengths(self, room: int, outlook: Outlook) -> Lengths:
        """The budget of a step that may add at most `room` tokens."""
        cap = min(MAX_DRAFT, room - 1)
        self.last_bucket = evidence_bucket(outlook)
        options = []
        if self.strategy in ("pld", "multilayer") and cap > 0 and outlook.copyable > 0:
            options.append(self.copy(min(cap, outlook.copyable), self.last_bucket))
        if self.strategy in ("draft", "multilayer") and cap > 0:
            options.append(self.model(cap, outlook.behind))
        if not options or self.strategy != "draft":  # draft is assisted decoding by definition: it keeps
            options.insert(0, Option(Lengths(0), 1.0 / self.target(1)))  # drafting, and learning its rate
        self.last = max(options, key=lambda option: option.speed).lengths
        return self.last

    def copy(self, cap: int, bucket: int) -> Option:
        first, rate = self.copy_first[bucket].value, self.copy_rate[bucket].value
        k = best_length(self.target, rate, cap, first=first)
        return Option(Lengths(k, copy=True), expected_tokens(k, rate, first) / self.target(k + 1))

    def model(self, cap: int, behind: int) -> Option:
        per_round = 0
        per_token = self.draft(1)
        if self.strategy == "multilayer":
            per_round = best_length(self.draft, self.round_rate.value, MAX_ROUND)
            per_token = self.draft(per_round + 1) / expected_tokens(per_round, self.round_rate.value)
        rate = self.target_rate.value
        k = max(1, best_length(self.target, rate, cap, per_token=per_token))
        catch_up = self.draft(behind + per_round) - self.draft(1 + per_round)
        seconds = self.target(k + 1) + per_token * k + catch_up
        speed = expected_tokens(k, rate) / seconds
        # one more token costs a draft pass and a wider verification; it pays while it survives often enough
        keep = tuple(written.value for written in self.written)
        return Option(
            Lengths(cap, per_round, keep=keep, stop_below=speed * (self.draft(1) + self.wider)), speed
        )

    def observe(self, draft: Draft, accepted: int) -> None:
        """A verified step: `accepted` tokens of the draft kept."""
        drafted = len(draft.tokens)
        if self.last.copy:
            self.copy_first[self.last_bucket].observe(min(drafted, 1), min(accepted, 1))
            if accepted:
                self.copy_rate[self.last_bucket].observe(drafted - 1, accepted - 1)
        else:
            self.target_rate.observe(drafted, accepted)
        for proposed, kept in draft.rounds:
            self.round_rate.observe(proposed, kept)
        for index, confidence in draft.written:
            if index <= accepted:  # a token after the first rejected one was never judged
                self.written[confidence_bucket(confidence)].observe(1, int(index < accepted))
