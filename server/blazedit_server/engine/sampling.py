"""Token choice and draft acceptance, greedy and sampled.

Greedy keeps a draft up to its first token that differs from the target's argmax, then adds the target's own
token: the output is exactly what plain greedy decoding gives. Sampling keeps the target's distribution
(speculative sampling, Leviathan et al. 2023, Alg. 1); see `accept_sampled` for the rule.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampler:
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    generator: torch.Generator | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def make_sampler(temperature: float, top_p: float, seed: int | None) -> Sampler:
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else torch.seed())
    return Sampler(temperature, top_p, generator)


def probabilities(logits: torch.Tensor, sampler: Sampler) -> torch.Tensor:
    """logits [n, vocab] -> the distribution we sample from [n, vocab] (temperature, then top-p), on
    the CPU."""
    probs = torch.softmax(logits.float().cpu() / sampler.temperature, dim=-1)
    if sampler.top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    outside = (
        sorted_probs.cumsum(dim=-1) - sorted_probs > sampler.top_p
    )  # the nucleus always keeps the top token
    sorted_probs[outside] = 0.0
    kept = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def sample(probs: torch.Tensor, sampler: Sampler) -> int:
    """probs [vocab] -> one token id."""
    return int(torch.multinomial(probs, 1, generator=sampler.generator))


def choose(logits: torch.Tensor, sampler: Sampler) -> int:
    """The next token from one row of logits [vocab]."""
    if sampler.greedy:
        return int(logits.argmax())
    return sample(probabilities(logits[None], sampler)[0], sampler)


Bans = tuple[Sequence[int], Collection[int]]  # (rows of a step's logits, tokens never chosen there)
NO_BANS: Bans = ((), ())


def accept_greedy(draft: Sequence[int], logits: torch.Tensor, bans: Bans = NO_BANS) -> tuple[int, int]:
    """draft [k], target logits [k + 1, vocab] (row i predicts the token after draft[:i]).
    Returns (m, token): draft[:m] matches the target's argmax, token = argmax at row m."""
    best = logits.argmax(dim=-1).tolist()
    rows, tokens = bans
    for row in rows:
        if best[row] in tokens:  # only then does the ban change the choice: copy just that row
            allowed = logits[row].clone()
            allowed[list(tokens)] = -torch.inf
            best[row] = int(allowed.argmax())
    m = 0
    while m < len(draft) and draft[m] == best[m]:
        m += 1
    return m, best[m]


def accept_sampled(
    draft: Sequence[int], q: torch.Tensor | None, logits: torch.Tensor, sampler: Sampler, bans: Bans = NO_BANS
) -> tuple[int, int]:
    """Speculative sampling. draft [k]; q [k, vocab] the draft model's distributions, or None for
    prompt-lookup drafts (which have none); target logits [k + 1, vocab]. Returns (m, token) as
    `accept_greedy`.

    With q: accept x = draft[i] with probability min(1, p_i(x) / q_i(x)); on the first rejection emit a sample
    of the residual max(0, p_i - q_i) / sum(max(0, p_i - q_i)) and stop. The emitted token is then distributed
    as p_i. Without q (a deterministic proposal): sample y ~ p_i and accept x iff y == x, else emit y and
    stop. If all k are accepted, emit a sample of p_k.
    """
    p = probabilities(logits, sampler)  # [k + 1, vocab]
    rows, tokens = bans
    if rows and tokens:
        index = torch.tensor(rows)
        p[index[:, None], torch.tensor(sorted(tokens))] = 0.0
        p[index] /= p[index].sum(dim=-1, keepdim=True)
    for i, x in enumerate(draft):
        if q is None:
            y = sample(p[i], sampler)
            if y != x:
                return i, y
            continue
        u = float(torch.rand((), generator=sampler.generator))
        if u * float(q[i, x]) < float(p[i, x]):  # u < p/q without dividing by a tiny q
            continue
        residual = (p[i] - q[i]).clamp(min=0.0)
        total = float(residual.sum())
        return i, sample(residual / total if total > 0 else p[i], sampler)
    return len(draft), sample(p[len(draft)], sampler)


def accept(
    draft: Sequence[int], q: torch.Tensor | None, logits: torch.Tensor, sampler: Sampler, bans: Bans = NO_BANS
) -> tuple[int, int]:
    if sampler.greedy:
        return accept_greedy(draft, logits, bans)
    return accept_sampled(draft, q, logits, sampler, bans)
