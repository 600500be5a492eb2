"""Drafters as pure functions: position-aware prompt lookup, and the acceptance rule."""

from __future__ import annotations

import pytest
import torch
from blazedit_server.engine.drafters import (
    DRAFT,
    PLD,
    Lengths,
    LookupDrafter,
    ModelDrafter,
    Outlook,
    PromptLookup,
)
from blazedit_server.engine.sampling import Sampler, accept_greedy, accept_sampled, make_sampler

# a reference "file": distinct tokens, so every position is unambiguous unless a test repeats some
FILE = list(range(100, 120))


def lookup_after(reference, output):
    lookup = PromptLookup(reference)
    lookup.commit(output)
    return lookup


def test_follows_the_original_while_the_output_copies_it():
    lookup = lookup_after(FILE, FILE[:3])
    assert lookup.propose(5) == FILE[3:8]
    lookup.commit(FILE[3:10])
    assert lookup.propose(4) == FILE[10:14]


def test_reanchors_after_an_insertion():
    output = [*FILE[:5], 7, 8, 9, FILE[5]]  # three new tokens, then the original goes on
    lookup = lookup_after(FILE, output[:-1])
    assert lookup.propose(3) == []  # inside the insertion nothing matches
    lookup.commit(output[-1:])
    assert lookup.propose(3) == FILE[6:9]


def test_reanchors_after_a_deletion():
    lookup = lookup_after(FILE, [*FILE[:5], FILE[9]])  # FILE[5:9] deleted
    assert lookup.propose(3) == FILE[10:13]


def test_repeated_code_is_copied_from_the_current_place_not_the_first():
    block = [1, 2, 3]
    reference = [*block, 50, 51, 52, *block, 60, 61, 62]
    lookup = lookup_after(reference, [*block, 50, 51, 52, *block])
    assert lookup.propose(3) == [60, 61, 62]  # left-most matching would propose 50, 51, 52


def test_reanchoring_prefers_matches_after_the_current_position():
    block = [1, 2, 3]
    reference = [*block, 50, 51, 52, *block, 60, 61, 62]
    lookup = lookup_after(reference, [*block, 50, 51, 52, 99, *block])  # an insertion, then the second block
    assert lookup.propose(2) == [60, 61]


def test_falls_back_to_earlier_matches_anywhere_in_prompt_and_output():
    lookup = lookup_after(FILE, [*FILE[:10], 7, FILE[2]])  # jumped back to an earlier place
    assert lookup.propose(2) == FILE[3:5]
    lookup = lookup_after([5, 6], [1, 2, 3, 4, 9, 1, 2])  # repeats its own output
    assert lookup.propose(2) == [3, 4]


def test_end_of_file_stops_the_copy():
    lookup = lookup_after(FILE, FILE[:-2])
    assert lookup.propose(5) == FILE[-2:]
    lookup.commit(FILE[-2:])
    assert lookup.propose(5) == []  # never runs from the reference into the output


def test_a_stop_ends_copies_that_reach_it_and_starts_none():
    """The end of the original file in an edit prompt: a copy runs up to it, never across or from it, and
    goes on with what the answer has there instead (its own closing fence)."""
    reference = [*FILE, 7, 8, 9]  # the file, then the prompt's closing fence and instruction
    lookup = PromptLookup(reference, stops={len(FILE): [70]})
    lookup.commit(FILE[:-3])
    assert lookup.propose(10) == [*FILE[-3:], 70]
    assert lookup.propose(2) == FILE[-3:-1]  # short of the stop: no ending
    assert lookup.outlook().copyable == 4
    lookup.commit(FILE[-3:])
    assert lookup.propose(10) == [70]  # the answer's fence, not the prompt's
    lookup.commit([70, 7])  # an anchor found past the stop copies on to the end of the reference
    assert lookup.propose(10) == [8, 9]
    without = lookup_after(reference, FILE)
    assert without.propose(10) == [7, 8, 9]


def test_a_stop_may_have_no_ending():
    lookup = PromptLookup([*FILE, 7], stops={len(FILE): []})
    lookup.commit(FILE[:-2])
    assert lookup.propose(10) == FILE[-2:]
    assert lookup.outlook().copyable == 2


def test_reanchoring_at_a_stop_proposes_its_ending_or_skips_it():
    reference = [*FILE, 5, 5]
    lookup = PromptLookup(reference, stops={len(FILE): [70]})
    lookup.commit([FILE[-1]])  # the file's last token, written anew: the answer's fence comes next
    assert lookup.propose(3) == [70]
    lookup = PromptLookup(reference, stops={len(FILE): []})
    lookup.commit([FILE[-1]])  # nothing to propose at the stop, and nothing past it
    assert lookup.propose(3) == []
    assert lookup_after(reference, [FILE[-1]]).propose(3) == [5, 5]


def test_lookahead_over_unaccepted_draft_tokens_does_not_move_the_anchor():
    lookup = lookup_after(FILE, FILE[:3])
    assert lookup.propose(2, extra=FILE[3:6]) == FILE[6:8]
    assert lookup.propose(2) == FILE[3:5]


def test_lookup_drafter_reads_new_output_from_the_sequence():
    prompt = [0, 0, *FILE, 0]
    drafter = LookupDrafter()
    drafter.start(prompt)
    draft = drafter.propose([*prompt, *FILE[:4]], Lengths(total=3))
    assert draft.tokens == FILE[4:7] and draft.origins == [PLD] * 3
    prediction = LookupDrafter(reference=FILE)
    prediction.start([0, 1])
    assert prediction.propose([0, 1, *FILE[:2]], Lengths(total=2)).tokens == FILE[2:4]


def one_hot_logits(tokens, vocab=200):
    logits = torch.zeros(len(tokens), vocab)
    logits[torch.arange(len(tokens)), torch.tensor(tokens)] = 5.0
    return logits


def test_greedy_acceptance_keeps_the_matching_prefix_and_the_targets_token():
    logits = one_hot_logits([10, 11, 42, 13])  # the target's argmax after each prefix of the draft
    assert accept_greedy([10, 11, 12], logits) == (2, 42)
    assert accept_greedy([10, 11, 42], logits) == (3, 13)  # all accepted: the bonus token
    assert accept_greedy([], logits[:1]) == (0, 10)
    assert accept_greedy([9], logits[:2]) == (0, 10)


def test_the_outlook_counts_the_evidence_for_the_anchor_and_what_it_can_copy():
    lookup = lookup_after(FILE, [*FILE[:5], 7, FILE[9]])  # re-anchored on a single token
    assert lookup.outlook() == Outlook(evidence=1, copyable=10)
    assert lookup.propose(20) == FILE[10:20]  # how much of it to send is the planner's choice
    lookup.commit(FILE[10:14])
    assert lookup.outlook() == Outlook(evidence=5, copyable=6)
    assert lookup_after(FILE, [7, 8]).outlook() == Outlook()  # lost: nothing to copy


def test_an_anchor_found_by_the_answers_first_token_is_its_opening():
    """An edit's answer opens with the fence the file sits in in the prompt, and the file follows."""
    fence = [1, 2]
    prompt = [50, *fence, *FILE, 60, 61]
    lookup = lookup_after(prompt, fence[:1])
    assert lookup.outlook() == Outlook(evidence=1, copyable=len(FILE) + 3, opening=True)
    lookup.commit([fence[1], *FILE[:5]])
    assert lookup.propose(3) == FILE[5:8]
    assert lookup.outlook().opening  # the same anchor, followed
    lookup.commit([9, FILE[8]])  # an edit, then the output finds the file again: a fresh anchor
    assert lookup.outlook() == Outlook(evidence=1, copyable=len(FILE) - 9 + 2)
    assert not lookup_after(prompt, [70, FILE[0]]).outlook().opening  # found by a later token


def test_the_model_drafter_reports_what_its_cache_has_not_read(self_engine):
    prompt = self_engine.tokenizer.encode("x = 1\ny = 2\n", add_special_tokens=False)
    drafter = ModelDrafter(self_engine.draft, Sampler(), LookupDrafter())
    drafter.start(prompt)
    assert drafter.outlook(prompt).behind == 1  # the prompt's last token is fed with the first draft pass
    assert drafter.outlook([*prompt, *prompt[:3]]).behind == 4
    assert drafter.outlook([*prompt, *prompt[:3]]).evidence > 0  # the output started to copy the prompt


def test_the_lookup_records_which_token_each_output_token_copied():
    output = [FILE[3], *FILE[4:8], 7, FILE[9], FILE[10]]  # found by a token, copied, an edit, found again
    lookup = lookup_after(FILE, output)
    assert lookup.sources == [None, 4, 5, 6, 7, None, None, 10]
    drafter = LookupDrafter()
    drafter.start([1, 2, *FILE])
    drafter.sync([1, 2, *FILE, *output])
    assert drafter.copied_from(22 + 1) == 2 + 4  # positions in the sequence: the prompt's, then the output's
    assert drafter.copied_from(22) is None and drafter.copied_from(5) is None
    predicted = LookupDrafter(reference=FILE)  # a prediction is not in the sequence: nothing to take
    predicted.start([1, 2])
    predicted.sync([1, 2, *output])
    assert predicted.copied_from(2 + 1) is None


def test_the_model_drafter_takes_long_copied_runs_from_its_cache(tiny_engine):
    prompt = list(range(10, 80))
    drafter = ModelDrafter(tiny_engine.draft, Sampler(), LookupDrafter())
    drafter.start(prompt)
    copied = [*prompt[5:45], 300]  # found by its first token, then 39 copied tokens, then an edit
    assert drafter.outlook([*prompt, *copied[:10]]).behind == 11  # 9 copied: too short a run to take
    seq = [*prompt, *copied]
    assert drafter.outlook(seq).behind == 3  # the prompt's last token, the one that found the copy, the edit
    drafter.propose(seq, Lengths(2))
    assert tiny_engine.draft.n_cached == len(drafter.cached) and drafter.cached[: len(seq)] == seq


class Scripted:
    """A draft model that always writes token 7, with the next scripted probability at each pass."""

    vocab = 16

    def __init__(self, confidences):
        self.confidences = list(confidences)
        self.n_cached = 0

    def reset(self):
        self.n_cached = 0

    def truncate(self, n):
        self.n_cached = n

    def forward(self, tokens, logits_from=0):
        self.n_cached += len(tokens)
        p = self.confidences.pop(0)
        probs = torch.full((len(tokens) - logits_from, self.vocab), (1 - p) / (self.vocab - 1))
        probs[:, 7] = p
        return probs.log()


KEEP = (0.2, 0.4, 0.6, 0.8, 0.99)  # per confidence bucket: < 0.3, < 0.5, < 0.7, < 0.9, >= 0.9


def test_the_draft_model_writes_until_the_whole_draft_is_unlikely_to_survive():
    confidences = [0.95, 0.95, 0.95, 0.6, 0.95, 0.4, 0.95, 0.95]
    drafter = ModelDrafter(Scripted([1.0, *confidences]), Sampler())  # the first pass reads the prompt
    drafter.start([1, 2, 3])
    draft = drafter.propose([1, 2, 3], Lengths(10, keep=KEEP, stop_below=0.5))
    # survival 0.99, 0.98, 0.97, then x0.6 = 0.58, x0.99 = 0.58, then x0.4 = 0.23 < 0.5: stop after 6 tokens
    assert draft.tokens == [7] * 6
    assert draft.written == [(i, pytest.approx(p)) for i, p in enumerate(confidences[:6])]
    assert draft.origins == [DRAFT] * 6


def test_without_survival_rates_the_draft_model_writes_the_whole_length():
    drafter = ModelDrafter(Scripted([1.0] + [0.1] * 10), Sampler())
    drafter.start([1, 2, 3])
    assert len(drafter.propose([1, 2, 3], Lengths(10)).tokens) == 10


def test_banned_tokens_are_never_chosen_at_their_rows():
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0]])  # token 1 (an end token, say) is the favourite
    assert accept_greedy([1], logits) == (1, 1)
    assert accept_greedy([1], logits, bans=([0], {1})) == (0, 2)  # banned at row 0: 2 is the next best
    assert accept_greedy([1], logits, bans=([1], {1})) == (1, 2)
    sampler = make_sampler(1.0, 1.0, seed=0)
    drawn = {accept_sampled([], None, logits[:1], sampler, bans=([0], {1}))[1] for _ in range(200)}
    assert drawn == {0, 2}
