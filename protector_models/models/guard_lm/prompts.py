"""Pairs as guard LM prompts that fit the model's context: a pair whose prompt fits is one prompt; a longer one is
read in windows, as the classifier reads long answers (:mod:`protector_models.models.windows`): windows of answer
tokens every ``stride`` tokens, each with the end of the question, rendered into the format's own prompt."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protector_models.models.guard_lm.format import GuardFormat
from protector_models.models.windows import slide
from protector_models.pairs import Pair

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SLACK = 8
"""Tokens kept free: a window's text tokenised inside the prompt may take a token or two more than alone."""


@dataclass(frozen=True)
class Prompt:
    """One model input: the pair and policy it belongs to (``pair * len(policies) + policy``), its text and ids."""

    slot: int
    text: str
    input_ids: list[int]


class PromptBuilder:
    """Renders pairs in a format and tokenises them, cutting long ones into windows that fit ``max_length``."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        guard_format: GuardFormat,
        *,
        max_length: int,
        window_tokens: int,
        window_stride: int,
    ) -> None:
        if not tokenizer.is_fast:
            raise ValueError("a guard LM needs a fast tokenizer (tokenizer.json) to cut long answers at token ends")
        self.tokenizer = tokenizer
        self.format = guard_format
        self.policies: tuple[str | None, ...] = guard_format.policies or (None,)
        self.max_length = max_length
        lead = "".join(line.header + max(line.texts, key=len) + line.separator for line in guard_format.lead)
        overhead = max(len(self._ids(guard_format.render("", "", policy) + lead)) for policy in self.policies)
        overhead += len(self._ids(guard_format.verdict_header)) + SLACK
        self.budget = max_length - overhead
        if self.budget < 16:
            raise ValueError(
                f"max_length {max_length} leaves {max(self.budget, 0)} tokens for the question and answer after the "
                f"{guard_format.name} prompt's own {overhead} tokens; raise `model.max_length`"
            )
        self.answer_tokens = min(window_tokens, self.budget - 1)
        self.stride = min(window_stride, self.answer_tokens)

    def prompts(self, pairs: Sequence[Pair]) -> list[Prompt]:
        """Every prompt of every pair: one per policy, or one per policy and window for a pair too long."""
        prompts = []
        for index, pair in enumerate(pairs):
            for offset, policy in enumerate(self.policies):
                slot = index * len(self.policies) + offset
                text = self.format.render(pair.question, pair.answer, policy)
                ids = self._ids(text)
                if len(ids) <= self.max_length - SLACK:
                    prompts.append(Prompt(slot, text, ids))
                    continue
                for question, answer in self._windows(pair):
                    text = self.format.render(question, answer, policy)
                    prompts.append(Prompt(slot, text, self._ids(text)))
        return prompts

    def _windows(self, pair: Pair) -> Iterator[tuple[str, str]]:
        """(question end, answer window) texts whose tokens fit the budget together."""
        question_offsets, answer_offsets = self._offsets(pair.question), self._offsets(pair.answer)
        if len(answer_offsets) <= self.answer_tokens:
            yield _tail(pair.question, question_offsets, self.budget - len(answer_offsets)), pair.answer
            return
        question = _tail(pair.question, question_offsets, self.budget - self.answer_tokens)
        for window in slide([list(range(len(answer_offsets)))], self.answer_tokens, self.stride):
            yield question, pair.answer[answer_offsets[window[0]][0] : answer_offsets[window[-1]][1]]

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(start, end) for start, end in encoded["offset_mapping"]]


def _tail(text: str, offsets: list[tuple[int, int]], keep: int) -> str:
    """The last ``keep`` tokens of ``text`` (all of it when it is that short; nothing when ``keep`` < 1)."""
    if keep >= len(offsets):
        return text
    return text[offsets[len(offsets) - keep][0] :] if keep > 0 else ""
