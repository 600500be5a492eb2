"""The decoding loop, a ladder of plain functions: prefill -> verify -> step -> generate.

Position is the only cursor. Between steps the target's cache holds every token of `seq` but the last one
(`target.n_cached == len(seq) - 1`); a step feeds that last token plus the draft in one forward pass, keeps
the accepted prefix of the draft and the target's own next token, and crops the cache to match. With an empty
draft a step is plain decoding, so strategy `regular` is the same loop.

`may_end(draft)` says, for each position a step verifies, whether the answer may end there; where it may not
(an edit's file is still open), the end-of-answer tokens are masked out of the target's logits at that
position, in every strategy alike.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from blazedit_client.protocol import FinishReason

from .backend import Backend
from .drafters import Draft, Drafter, Lengths
from .policy import Planner
from .sampling import NO_BANS, Bans, Sampler, accept, choose

log = logging.getLogger(__name__)
EndCheck = Callable[[Sequence[int]], Sequence[bool]]  # draft -> whether the answer may end at each position


def anywhere(draft: Sequence[int]) -> list[bool]:
    """The answer may end at every position (no file to keep open)."""
    return [True] * (len(draft) + 1)


@dataclass
class StepResult:
    tokens: list[int]  # added to the output (an end-of-answer token is not part of the output)
    drafted: int  # draft tokens the target verified
    accepted: int  # of them, how many are in `tokens`
    proposed_by: Counter = field(default_factory=Counter)  # layer -> draft tokens verified
    accepted_by: Counter = field(default_factory=Counter)  # layer -> of them in the output
    finish: FinishReason | None = None


def prefill(target: Backend, prompt: Sequence[int], sampler: Sampler) -> int:
    """Run the prompt through the target; returns the first output token."""
    target.reset()
    logits = target.forward(prompt, logits_from=len(prompt) - 1)  # [1, vocab]
    return choose(logits[0], sampler)


def verify(
    target: Backend, seq: Sequence[int], draft: Draft, sampler: Sampler, bans: Bans = NO_BANS
) -> tuple[int, int]:
    """One target pass over seq[-1] + draft; crops the cache to the accepted prefix. `bans` = (rows, tokens):
    those tokens are never chosen at those rows. Returns (m, next token)."""
    start = target.n_cached  # == len(seq) - 1
    logits = target.forward([seq[-1], *draft.tokens])  # [k + 1, vocab]
    m, token = accept(draft.tokens, draft.q_matrix(), logits, sampler, bans)
    target.truncate(start + 1 + m)
    return m, token


def finish_tokens(tokens: list[int], eos: set[int], room: int) -> tuple[list[int], FinishReason | None]:
    """Cut new tokens at the first end-of-answer token or at the output budget."""
    for i, token in enumerate(tokens[:room]):
        if token in eos:
            return tokens[:i], FinishReason.stop
    if len(tokens) >= room:
        return tokens[:room], FinishReason.length
    return tokens, None


def step(
    target: Backend,
    drafter: Drafter,
    seq: list[int],
    lengths: Lengths,
    sampler: Sampler,
    eos: set[int],
    room: int,
    may_end: EndCheck = anywhere,
) -> tuple[StepResult, Draft]:
    draft = drafter.propose(seq, lengths) if lengths.total > 0 else Draft()
    rows = [i for i, allowed in enumerate(may_end(draft.tokens)) if not allowed]
    m, token = verify(target, seq, draft, sampler, (rows, eos))
    tokens, finish = finish_tokens([*draft.tokens[:m], token], eos, room)
    kept = min(m, len(tokens))
    result = StepResult(
        tokens, len(draft.tokens), kept, Counter(draft.origins), Counter(draft.origins[:kept])
    )
    result.finish = finish
    return result, draft


def generate(
    target: Backend,
    drafter: Drafter,
    planner: Planner,
    prompt: Sequence[int],
    *,
    sampler: Sampler,
    eos: set[int],
    max_new_tokens: int,
    may_end: EndCheck = anywhere,
) -> Iterator[StepResult]:
    """Yield one StepResult per target pass; the first one holds the token from the prefill."""
    seq = list(prompt)
    first = prefill(target, prompt, sampler)
    drafter.start(prompt)
    tokens, finish = finish_tokens([first], eos, max_new_tokens)
    seq += tokens
    yield StepResult(tokens, 0, 0, finish=finish)
    while finish is None:
        room = max_new_tokens - (len(seq) - len(prompt))
        lengths = planner.lengths(room, drafter.outlook(seq))
        result, draft = step(target, drafter, seq, lengths, sampler, eos, room, may_end)
        planner.observe(draft, result.accepted)
        log.debug(
            "step: %s, drafted %s, accepted %d", planner.last, dict(result.proposed_by), result.accepted
        )
        seq += result.tokens
        finish = result.finish
        yield result
