"""Drafters: where the tokens that the target verifies come from.

A drafter is told the whole sequence so far (prompt + accepted output) and a length budget, and proposes a
`Draft`. Three implementations share the `Drafter` protocol:

- `LookupDrafter` (strategy pld): position-aware prompt lookup (`PromptLookup`) over the reference text.
- `ModelDrafter` without a lookup (strategy draft): the small model writes the draft token by token.
- `ModelDrafter` with a lookup (strategy multilayer): prompt lookup proposes a run of tokens, the draft model
  checks the run in one forward pass and adds its own next token, repeated until the draft is long enough or
  no longer worth its cost. Copy-heavy stretches give long drafts at almost no cost, edited stretches short
  drafts written by the small model.

The draft model stops writing once the chance that the target accepts the whole draft falls below
`Lengths.stop_below`: each token it writes survives with the rate the target has accepted tokens written with
that confidence (`Lengths.keep`, per bucket of `CONFIDENCE_BUCKETS`, learnt by the planner), so a draft model
that is often right when unsure keeps drafting and one that is often wrong when sure stops early.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from .backend import Backend
from .sampling import Sampler, probabilities, sample

PLD, DRAFT = "pld", "draft"
CONFIDENCE_BUCKETS = (0.3, 0.5, 0.7, 0.9)  # the draft model's probability of a token it writes


def confidence_bucket(probability: float) -> int:
    return bisect.bisect_right(CONFIDENCE_BUCKETS, probability)


@dataclass
class Draft:
    tokens: list[int] = field(default_factory=list)
    origins: list[str] = field(
        default_factory=list
    )  # per token: PLD (copied) or DRAFT (written by the model)
    q: list[torch.Tensor] | None = None  # per token: the draft model's distribution [vocab] (sampling only)
    rounds: list[tuple[int, int]] = field(
        default_factory=list
    )  # per draft pass: (copied tokens checked, kept)
    written: list[tuple[int, float]] = field(
        default_factory=list
    )  # per token the draft model wrote: (index in tokens, its probability for it)

    def add(self, tokens: Sequence[int], origins: Sequence[str], q: Sequence[torch.Tensor] | None) -> None:
        self.tokens += tokens
        self.origins += origins
        if q is not None:
            self.q = (self.q or []) + list(q)

    def q_matrix(self) -> torch.Tensor | None:
        return torch.stack(self.q) if self.q else None  # [k, vocab]


@dataclass(frozen=True)
class Lengths:
    """The budget of one target step, chosen by `policy`."""

    total: int  # tokens the target verifies at most
    per_round: int = 0  # prompt-lookup tokens the draft model checks per forward (multilayer)
    copy: bool = False  # prompt lookup drafts for the target directly, without the draft model
    keep: tuple[float, ...] = ()  # per confidence bucket: the rate the target keeps tokens the draft wrote
    stop_below: float = 0.0  # the draft model stops once the whole draft survives with less than this


@dataclass(frozen=True)
class Outlook:
    """What a drafter can offer the next step, for the planner to price (see policy.Planner)."""

    evidence: int = 0  # tokens of evidence for the prompt-lookup anchor (0: prompt lookup has nothing)
    copyable: int = 0  # tokens prompt lookup can propose from there
    opening: bool = False  # the anchor was found by the answer's first token (see Anchor.opening)
    behind: int = 0  # tokens the draft model must read before it drafts (accepted since its last pass)


class Drafter(Protocol):
    passes: int  # draft-model forward passes so far (0 for prompt lookup)

    def start(self, prompt: Sequence[int]) -> None: ...

    def outlook(self, seq: Sequence[int]) -> Outlook: ...

    def propose(self, seq: Sequence[int], lengths: Lengths) -> Draft: ...


# --- position-aware prompt lookup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    pos: int | None  # index in the lookup tokens of the next token we expect the output to copy; None: lost
    hint: int  # where the output was last aligned: re-anchoring prefers matches from here on
    run: int = 0  # tokens of evidence for this anchor: the matched n-gram, then every token copied since
    # Found by the answer's first token: in an edit that opens the fence the file sits in in the prompt (or,
    # after a reply start, is the file's first token), so the anchor is where the file begins (24 dev-set
    # edits: right at all 75 of their answers' first 4 tokens; fresh anchors after an edit: 35%-95% by
    # evidence). Only the first token: an answer that is no edit wastes at most one copy on it.
    opening: bool = False


class PromptLookup:
    """Prompt lookup that knows where the output is in the reference.

    The lookup tokens are the reference (the prompt with the original file, or a prediction) followed by the
    output as it is accepted. While the output copies the reference, the anchor just moves forward and the
    proposal is the continuation from there. When the output diverges (an edit), the anchor is re-found with
    the latest output n-gram: the longest n-gram that occurs, at its first occurrence from the last aligned
    position on, else at its nearest occurrence before it (anywhere in reference + output). Repeated code is
    thus copied from the right place, unlike the left-most match of plain prompt lookup. N-grams are indexed
    once, and each accepted token costs O(n_max) to index, so a step's cost does not grow with the prompt.
    """

    def __init__(
        self, reference: Sequence[int], n_max: int = 4, stops: Mapping[int, Sequence[int]] | None = None
    ) -> None:
        self.n_max = n_max
        self.tokens: list[int] = []
        self.index: dict[tuple[int, ...], list[int]] = defaultdict(list)  # n-gram -> positions right after it
        self.anchor = Anchor(pos=None, hint=0)
        self.extend(reference)
        self.boundary = len(reference)  # a copy never runs from the end of the reference into the output
        self.sources: list[int | None] = []  # per output token: the lookup token it copied, or None
        # Positions in the reference a copy never runs across, nor starts at, each with what the output has
        # there instead, proposed after a copy that reaches it: the end of the original file in an edit
        # prompt, whose closing fence the prompt tokenizes with the blank line after it and the answer alone.
        self.endings = {
            stop: list(ending) for stop, ending in (stops or {}).items() if 0 < stop < self.boundary
        }
        self.stops = sorted(self.endings)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.tokens.append(token)
            end = len(self.tokens)
            for n in range(1, min(self.n_max, end) + 1):
                self.index[tuple(self.tokens[end - n : end])].append(end)

    def commit(self, tokens: Sequence[int]) -> None:
        """Accepted output tokens: move the anchor along them, then make them searchable."""
        for token in tokens:
            self.sources.append(self.source(self.anchor, token))
            self.anchor = self.follow(self.anchor, [token])
            self.extend([token])

    def follow(self, anchor: Anchor, tokens: Sequence[int]) -> Anchor:
        """The anchor after the output grows by `tokens` (not yet in the lookup tokens)."""
        recent = self.tokens[-self.n_max :]
        for token in tokens:
            recent = [*recent[1 - self.n_max :], token]
            anchor = self.step(anchor, token, recent)
        return anchor

    def step(self, anchor: Anchor, token: int, recent: Sequence[int]) -> Anchor:
        pos = self.source(anchor, token)
        if pos is not None:
            return Anchor(pos + 1, pos + 1, anchor.run + 1, anchor.opening)
        return self.reanchor(recent, anchor.hint)

    def source(self, anchor: Anchor, token: int) -> int | None:
        """The lookup token that `token` copies when a copy at the anchor proposes it, else None."""
        pos = anchor.pos
        return pos if pos is not None and pos < self.end(pos) and self.tokens[pos] == token else None

    def end(self, pos: int) -> int:
        """Where a copy that is at pos must stop: the next stop, the end of the reference, or of the output
        so far."""
        if pos > self.boundary:
            return len(self.tokens)
        i = bisect.bisect_left(self.stops, pos)
        return self.stops[i] if i < len(self.stops) else self.boundary

    def reanchor(self, recent: Sequence[int], hint: int) -> Anchor:
        """`recent` ends with a token not yet in the lookup tokens."""
        for n in range(min(self.n_max, len(recent)), 0, -1):
            positions = self.index.get(tuple(recent[-n:]))
            pos = nearest(positions, hint, self.copyable) if positions else None
            if pos is not None:
                opening = len(self.tokens) == self.boundary and pos <= self.boundary  # the first output token
                return Anchor(pos, pos, n, opening)
        return Anchor(None, hint)

    def propose(self, k: int, extra: Sequence[int] = ()) -> list[int]:
        """Up to k tokens that should follow the output (+ `extra`, tokens drafted but not yet accepted)."""
        anchor = self.follow(self.anchor, extra) if extra else self.anchor
        if anchor.pos is None or k <= 0:
            return []
        end = self.end(anchor.pos)
        copy = self.tokens[anchor.pos : min(anchor.pos + k, end)]
        return copy + self.endings.get(end, [])[: k - len(copy)]

    def outlook(self) -> Outlook:
        """How much the anchor is worth: its evidence (an anchor found by one common token after an edit is
        often wrong, one confirmed by a long copied run rarely) and how far it can copy."""
        pos = self.anchor.pos
        if pos is None:
            return Outlook()
        return Outlook(evidence=self.anchor.run, copyable=self.copyable(pos), opening=self.anchor.opening)

    def copyable(self, pos: int) -> int:
        """How many tokens a copy at pos can propose: up to its end, and the ending of a stop there."""
        end = self.end(pos)
        return end - pos + len(self.endings.get(end, ()))


def nearest(positions: list[int], hint: int, copyable: Callable[[int], int]) -> int | None:
    """The first position >= hint that has something to copy, else the nearest one before hint. Few
    positions have nothing (the ends of reference and output, stops without an ending): this is cheap."""
    i = bisect.bisect_left(positions, hint)
    after = (positions[j] for j in range(i, len(positions)) if copyable(positions[j]))
    before = (positions[j] for j in range(i - 1, -1, -1) if copyable(positions[j]))
    found = next(after, None)
    return found if found is not None else next(before, None)


class LookupDrafter:
    """Strategy pld: the draft is the prompt-lookup continuation."""

    passes = 0

    def __init__(
        self, reference: Sequence[int] | None = None, stops: Mapping[int, Sequence[int]] | None = None
    ) -> None:
        self.reference = reference
        self.stops = stops  # positions in the prompt (PromptLookup.endings); unused with a reference
        self.lookup = PromptLookup(())
        self.prompt_len = 0

    def start(self, prompt: Sequence[int]) -> None:
        if self.reference is None:
            self.lookup = PromptLookup(prompt, stops=self.stops)
        else:
            self.lookup = PromptLookup(self.reference)
        self.prompt_len = len(prompt)
        self.committed = 0

    def sync(self, seq: Sequence[int]) -> None:
        """Feed the output accepted since the last call to the lookup."""
        new = seq[self.prompt_len + self.committed :]
        self.lookup.commit(new)
        self.committed += len(new)

    def outlook(self, seq: Sequence[int]) -> Outlook:
        self.sync(seq)
        return self.lookup.outlook()

    def propose(self, seq: Sequence[int], lengths: Lengths) -> Draft:
        self.sync(seq)
        tokens = self.lookup.propose(lengths.total)
        return Draft(list(tokens), [PLD] * len(tokens))

    def copied_from(self, i: int) -> int | None:
        """The earlier position of seq whose token the output token at seq[i] copied (seq synced past i), or
        None: not a copy, or a copy of a reference that is not in seq (a prediction)."""
        source = self.lookup.sources[i - self.prompt_len] if i >= self.prompt_len else None
        if source is None:
            return None
        if source >= self.lookup.boundary:
            return self.prompt_len + source - self.lookup.boundary
        return source if self.reference is None else None


# --- the draft model, alone or fed by prompt lookup ---------------------------------------------------------


# Copied runs shorter than this are read rather than taken from the draft cache (`ModelDrafter.sync`): taking
# a run splits the reading of what follows it into a pass of its own, which costs a draft model about what
# reading 10-15 more tokens in one pass does (0.5B int8 draft on 2 cores: T(1) 51 ms, each token more ~4 ms).
MIN_REUSE = 16


class ModelDrafter:
    """Strategies draft (lookup None) and multilayer (lookup given); see the module docstring.

    Multilayer catches up on a copied stretch without reading it where the backend can (`Backend.reuse`): the
    output tokens that prompt lookup copied take the draft cache's keys and values of the tokens they copy,
    turned to their new positions. Reading 100-150 copied tokens costs the 0.5B draft 0.25-0.6 s on a CPU, a
    verification pass or two of the target, at every edit after a copy; taken from the cache, the draft model
    still knows where it is (teacher-forced on 20 dev tasks, its first token after a copy is the target's 87%
    of the time, 89% when it reads everything).
    """

    def __init__(self, backend: Backend, sampler: Sampler, lookup: LookupDrafter | None = None) -> None:
        self.backend = backend
        self.sampler = sampler
        self.lookup = lookup
        self.cached: list[int] = []  # the tokens in the draft model's cache
        self.passes = 0

    def start(self, prompt: Sequence[int]) -> None:
        self.backend.reset()
        self.cached = list(prompt[:-1])
        if self.cached:
            self.backend.forward(self.cached, logits_from=len(self.cached) - 1)
        self.synced = len(self.cached)  # cached[:synced] == seq[:synced] (seq only grows)
        if self.lookup is not None:
            self.lookup.start(prompt)

    def outlook(self, seq: Sequence[int]) -> Outlook:
        if self.lookup is None:
            return Outlook(behind=len(seq) - self.common(seq))
        outlook = self.lookup.outlook(seq)  # syncs the lookup, which `reusable` reads
        start = self.common(seq)
        reused = sum(end - begin for begin, end, _ in self.reusable(seq, start))
        return replace(outlook, behind=len(seq) - start - reused)

    def common(self, seq: Sequence[int]) -> int:
        """How much of seq the draft cache holds (the last token of seq is always fed again)."""
        return common_prefix(self.cached, seq, limit=len(seq) - 1, start=min(self.synced, len(seq) - 1))

    def sync(self, seq: Sequence[int]) -> list[int]:
        """Crop the draft cache to its common prefix with seq and take the copied runs after it from the cache
        (reading what lies between them); returns the tokens still to feed (>= 1)."""
        n = self.common(seq)
        self.backend.truncate(n)
        del self.cached[n:]
        for begin, end, source in self.reusable(seq, n):
            if begin > n:
                self.backend.forward(seq[n:begin], logits_from=begin - n - 1)
            self.backend.reuse(source, end - begin)
            self.cached += seq[n:end]
            n = end
        self.synced = n
        return list(seq[n:])

    def reusable(self, seq: Sequence[int], start: int) -> list[tuple[int, int, int]]:
        """The runs (begin, end, source) of seq[start:-1], at least MIN_REUSE long, whose tokens copy those at
        source.. (all before begin, so in the cache when the run is taken)."""
        if self.lookup is None or not self.backend.can_reuse:
            return []
        runs, begin, source = [], start, None
        for i in range(start, len(seq)):
            copied = self.lookup.copied_from(i) if i < len(seq) - 1 else None
            if source is not None and copied == source + (i - begin) and copied < begin:
                continue  # the run goes on
            if source is not None and i - begin >= MIN_REUSE:
                runs.append((begin, i, source))
            begin, source = i, copied
        return runs

    def propose(self, seq: Sequence[int], lengths: Lengths) -> Draft:
        if self.lookup is not None:
            self.lookup.sync(seq)
            if lengths.copy:
                copied = self.lookup.lookup.propose(lengths.total)
                if copied:  # the draft model catches up on these tokens in its next pass, in one batch
                    return Draft(copied, [PLD] * len(copied))
        pending = self.sync(seq)
        draft = Draft(q=None)
        survival = 1.0  # the chance that the target accepts the whole draft so far
        while len(draft.tokens) < lengths.total:
            room = lengths.total - len(draft.tokens)
            candidates = self.candidates(draft.tokens, min(lengths.per_round, room - 1))
            confidence = self.round(pending, candidates, draft)
            pending = draft.tokens[-1:]
            if lengths.keep:
                survival *= lengths.keep[confidence_bucket(confidence)]
            if survival < lengths.stop_below:
                break
        return draft

    def candidates(self, drafted: list[int], k: int) -> list[int]:
        if self.lookup is None or k <= 0:
            return []
        return self.lookup.lookup.propose(k, extra=drafted)

    def round(self, pending: list[int], candidates: list[int], draft: Draft) -> float:
        """One draft forward over pending + candidates: keep the candidates the draft model agrees with, add
        its own next token, crop the cache to the kept tokens. Returns its probability for its own token."""
        start = self.backend.n_cached
        logits = self.backend.forward(pending + candidates, logits_from=len(pending) - 1)  # [k + 1, vocab]
        self.passes += 1
        m, own, q, confidence = self.check(candidates, logits)
        self.backend.truncate(start + len(pending) + m)
        self.cached += pending + candidates[:m]
        draft.rounds.append((len(candidates), m))
        draft.written.append((len(draft.tokens) + m, confidence))
        draft.add([*candidates[:m], own], [PLD] * m + [DRAFT], q)
        return confidence

    def check(self, candidates: list[int], logits: torch.Tensor) -> tuple[int, int, list | None, float]:
        """(m, own token, q rows of the kept tokens or None when greedy, the draft's probability of its own
        token)."""
        if self.sampler.greedy:
            best = logits.argmax(dim=-1).tolist()
            m = common_prefix(candidates, best, limit=len(candidates))
            confidence = float(torch.softmax(logits[m].float(), dim=-1)[best[m]])
            return m, best[m], None, confidence
        q = probabilities(logits, self.sampler)  # [k + 1, vocab]
        for m, x in enumerate(candidates):
            y = sample(q[m], self.sampler)  # the draft model samples; a copied token survives if it matches
            if y != x:
                return m, y, list(q[: m + 1]), float(q[m, y])
        own = sample(q[len(candidates)], self.sampler)
        return len(candidates), own, list(q), float(q[len(candidates), own])


def common_prefix(a: Sequence[int], b: Sequence[int], limit: int, start: int = 0) -> int:
    """Length of the common prefix of a and b (at most limit), given that the first `start` tokens agree."""
    n = start
    while n < limit and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n
