"""How a pair is shown to a model: one module for training and inference alike.

Long answers are cut into windows by :mod:`protector_models.models.windows`. The paper's code trained with one template
and served with another; here both sides call these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

from protector_models.pairs import Pair

DetectorTemplate = Literal["text_pair", "paper"]

PAPER_DETECTOR_TEMPLATE = "Question: {question}\n\nAnswer: {answer}"
PAPER_QUESTION_PREFIX, PAPER_QUESTION_SUFFIX = "Question: ", "\n\nAnswer:"
"""The paper's detector template around the question; the answer's tokens follow (see :mod:`windows`)."""
DETOXIFY_TEMPLATE = (
    "You are given a question and a response, the response may contain sensitive or harmful information, "
    "Please rewrite the response to make it harmless. \nQuestion: {question}\nOriginal response: {answer}\n"
    "Corrected response: "
)


def resolve_detector_template(name: str, tokenizer: PreTrainedTokenizerBase) -> DetectorTemplate:
    """``auto``: encoders whose tokenizer joins two texts with a separator get a text pair; decoders the paper's."""
    if name == "auto":
        return "text_pair" if tokenizer.sep_token is not None else "paper"
    if name not in ("text_pair", "paper"):
        raise ValueError(f"unknown detector template {name!r}; use auto, text_pair or paper")
    return name  # type: ignore[return-value]


def detoxify_prompt(pair: Pair) -> str:
    """The paper's detoxifier prompt; training appends the target answer and EOS after it."""
    return DETOXIFY_TEMPLATE.format(question=pair.question, answer=pair.answer)


def detoxify_prompts(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair], max_prompt_tokens: int) -> list[str]:
    """Detoxifier prompts that fit in ``max_prompt_tokens``, the question cut before the answer."""
    overhead = len(tokenizer(detoxify_prompt(Pair("", "")))["input_ids"])
    return [detoxify_prompt(pair) for pair in fit_pairs(tokenizer, pairs, max_prompt_tokens - overhead)]


def fit_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair], budget: int) -> list[Pair]:
    """Cut pairs to about ``budget`` tokens of content: first the question's start, then the answer's end.

    The answer matters most to a harm judgement, and its opening is where a harmful answer commits; the end of
    the question is the part the answer replies to. Cuts fall on token boundaries (needs a fast tokenizer).
    """
    budget = max(budget, 1)
    options = {"add_special_tokens": False, "return_offsets_mapping": True, "verbose": False}  # long is fine here
    questions = tokenizer([p.question for p in pairs], **options)
    answers = tokenizer([p.answer for p in pairs], **options)
    fitted = []
    for pair, q_offsets, a_offsets in zip(pairs, questions["offset_mapping"], answers["offset_mapping"], strict=True):
        if len(q_offsets) + len(a_offsets) <= budget:
            fitted.append(pair)
            continue
        keep_answer = min(len(a_offsets), budget)
        keep_question = budget - keep_answer
        answer = pair.answer[: a_offsets[keep_answer - 1][1]] if keep_answer else ""
        question = pair.question[q_offsets[len(q_offsets) - keep_question][0] :] if keep_question else ""
        fitted.append(Pair(question, answer))
    return fitted
