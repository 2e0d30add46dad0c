"""A guard LM as a detector: P(unsafe) from the softmax over its format's two label tokens at the first answer
position, one forward pass per prompt, in length-sorted batches padded on the left; categories for the pairs that
call for them."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from protector_models.config.schema import GuardLMConfig
from protector_models.errors import ModelLoadError, ModelRuntimeError
from protector_models.interfaces import Judgement
from protector_models.models.batching import filled_mask, length_sorted_batches, pad_rows
from protector_models.models.guard_lm import guard_format
from protector_models.models.guard_lm.format import GuardFormat
from protector_models.models.guard_lm.prompts import Prompt, PromptBuilder
from protector_models.models.loading import load_causal_lm
from protector_models.models.passes import PaddedBatch, run_in_parts
from protector_models.pairs import Pair


class GuardPromptWarning(UserWarning):
    """The model's own chat template renders another prompt than the format's."""


class GuardLMDetector:
    """A generative guard model read through its prompt format (see :mod:`protector_models.models.guard_lm`).

    ``score`` gives P(unsafe) per pair; ``judge`` also gives categories: Llama Guard's, read by a greedy
    continuation after ``unsafe`` for the pairs scoring at least ``category_threshold``; ShieldGemma's, one
    probability per policy. A pair too long for ``max_length`` is read in windows and scores its highest window.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        guard_format: GuardFormat,
        *,
        max_length: int = 8192,
        batch_size: int = 8,
        max_padding: float | None = 0.25,
        window_tokens: int = 2048,
        window_stride: int = 1536,
        categories: bool = True,
        category_threshold: float = 0.5,
        category_tokens: int = 24,
        padding_side: Literal["left", "right"] = "left",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.format = guard_format
        self.unsafe_id, self.safe_id = _label_ids(
            tokenizer, guard_format, (guard_format.unsafe_token, guard_format.safe_token)
        )
        self.lead_ids = [_label_ids(tokenizer, guard_format, line.tokens) for line in guard_format.lead]
        _check_markup(tokenizer, guard_format)
        limit = _context_limit(model)
        self.builder = PromptBuilder(
            tokenizer,
            guard_format,
            max_length=min(max_length, limit or max_length),
            window_tokens=window_tokens,
            window_stride=window_stride,
        )
        self.batch_size = batch_size
        self.max_padding = max_padding
        self.categories = categories
        self.category_threshold = category_threshold
        self.category_tokens = category_tokens
        self.padding_side = padding_side
        if tokenizer.pad_token_id is None:
            raise ModelLoadError("the guard LM's tokenizer has no pad token, nor an end-of-sequence token to pad with")

    @classmethod
    def from_config(cls, config: GuardLMConfig) -> Self:
        """Load the model named by ``config.model`` (safetensors, pins checked) and read it in ``config.format``."""
        chosen = guard_format(config)
        loaded = load_causal_lm(config.model, image_text=chosen.image_text)
        check_chat_template(loaded.tokenizer, chosen)
        return cls(
            loaded.model,
            loaded.tokenizer,
            chosen,
            max_length=config.model.max_length,
            batch_size=config.batch_size,
            max_padding=config.max_padding,
            window_tokens=config.window_tokens,
            window_stride=config.window_stride,
            categories=config.categories,
            category_threshold=config.category_threshold,
            category_tokens=config.category_tokens,
        )

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return next(self.model.parameters()).device

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """P(unsafe) per pair (the highest over its policies and windows), in input order."""
        return [judgement.score for judgement in self.judge(pairs, categories=False)]

    def judge(self, pairs: Sequence[Pair], *, categories: bool | None = None) -> list[Judgement]:
        """Scores and categories per pair, in input order (``categories`` False: scores only)."""
        if not pairs:
            return []
        prompts = self.builder.prompts(pairs)
        probabilities = self._probabilities(prompts)
        policies = len(self.builder.policies)
        best = [-1] * (len(pairs) * policies)  # each slot's highest-scoring prompt
        for index, prompt in enumerate(prompts):
            if best[prompt.slot] < 0 or probabilities[index] > probabilities[best[prompt.slot]]:
                best[prompt.slot] = index
        slots = [probabilities[i] for i in best]
        scores = [max(slots[p * policies : (p + 1) * policies]) for p in range(len(pairs))]
        found: list[dict[str, float | bool]] = [{} for _ in pairs]
        if self.categories if categories is None else categories:
            if self.format.policies:
                for p in range(len(pairs)):
                    found[p] = dict(zip(self.format.policies, slots[p * policies : (p + 1) * policies], strict=True))
            elif self.format.names_categories:
                flagged = [p for p, score in enumerate(scores) if score >= self.category_threshold]
                for p, named in zip(flagged, self._continuations([prompts[best[p]] for p in flagged]), strict=True):
                    found[p] = dict(self.format.categories(named))
        return [Judgement(score, found[p]) for p, score in enumerate(scores)]

    def _probabilities(self, prompts: Sequence[Prompt]) -> list[float]:
        """P(unsafe) per prompt, in length-sorted batches; read back from the device once."""
        device = self.device
        lengths = [len(prompt.input_ids) for prompt in prompts]
        with torch.inference_mode():
            values = torch.zeros(len(prompts), device=device)
            finite = torch.ones((), dtype=torch.bool, device=device)

            def fold(part: PaddedBatch) -> None:
                probabilities, ok = self._forward(part, prompts)
                values.index_copy_(0, part.owners, probabilities)
                finite.logical_and_(ok)

            limit: int | None = None
            for chunk in length_sorted_batches(lengths, self.batch_size, self.max_padding):
                batch = self._pad([prompts[i].input_ids for i in chunk], chunk)
                batch = batch.pinned() if device.type == "cuda" else batch
                limit = run_in_parts(batch, device, limit, fold, what="the guard LM")
            read = torch.cat([values, finite.to(values.dtype).unsqueeze(0)]).tolist()
        if read.pop() != 1.0:
            raise ModelRuntimeError("the guard LM produced non-finite logits (NaN or infinity); the model is broken")
        return read

    def _forward(self, part: PaddedBatch, prompts: Sequence[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
        """P(unsafe) per row of ``part``, and whether the logits read were finite; a format with lead lines writes
        them first (greedily), then its verdict header (WildGuard)."""
        if not self.format.lead and not self.format.verdict_header:
            return self._label_softmax(part.features, (self.unsafe_id, self.safe_id))
        texts = [prompts[i].text for i in part.owners.tolist()]
        finite = torch.ones((), dtype=torch.bool, device=part.owners.device)
        for line, ids in zip(self.format.lead, self.lead_ids, strict=True):
            first, ok = self._label_softmax(self._features([t + line.header for t in texts]), ids)
            finite &= ok
            texts = [
                t + line.header + (line.texts[0] if choice else line.texts[1]) + line.separator
                for t, choice in zip(texts, (first >= 0.5).tolist(), strict=True)
            ]
        unsafe, ok = self._label_softmax(
            self._features([t + self.format.verdict_header for t in texts]), (self.unsafe_id, self.safe_id)
        )
        return unsafe, finite & ok

    def _label_softmax(
        self, features: dict[str, torch.Tensor], labels: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax over the two label tokens at each row's last real position (its first answer position)."""
        mask = features["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        last = (torch.arange(mask.shape[1], device=mask.device) * mask).argmax(-1, keepdim=True)
        logits = self.model(
            input_ids=features["input_ids"],
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=last,
            use_cache=False,
        ).logits[:, -1, :]
        pair = torch.stack([logits[:, labels[0]], logits[:, labels[1]]], -1).float()  # no index copied to the device
        return torch.softmax(pair, -1)[:, 0], torch.isfinite(pair).all()

    def _features(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = [list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) for text in texts]
        return {k: v.to(self.device) for k, v in self._pad(ids, range(len(ids))).features.items()}

    def _pad(self, rows: Sequence[list[int]], owners: Sequence[int]) -> PaddedBatch:
        input_ids = pad_rows(rows, self.tokenizer.pad_token_id, self.padding_side)
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        mask = torch.from_numpy(filled_mask(lengths, input_ids.shape[1], self.padding_side).astype(np.int64))
        return PaddedBatch({"input_ids": input_ids, "attention_mask": mask}, torch.tensor(list(owners)))

    def _continuations(self, prompts: Sequence[Prompt]) -> list[str]:
        """What the model writes after ``unsafe`` for each prompt (greedy, ``category_tokens`` at most)."""
        if not prompts:
            return []
        rows = [[*prompt.input_ids, self.unsafe_id] for prompt in prompts]
        texts = [""] * len(rows)
        stop = _stop_ids(self.model, self.tokenizer)
        device = self.device
        lengths = [len(row) for row in rows]

        def generate(part: PaddedBatch) -> None:
            generated = self.model.generate(  # type: ignore[operator]
                input_ids=part.features["input_ids"],
                attention_mask=part.features["attention_mask"],
                max_new_tokens=self.category_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=stop,
            )
            new = generated[:, part.width :].tolist()
            for index, tokens in zip(part.owners.tolist(), new, strict=True):
                texts[index] = self.tokenizer.decode(_until(tokens, stop), skip_special_tokens=True)

        with torch.inference_mode():
            limit: int | None = None
            for chunk in length_sorted_batches(lengths, self.batch_size):
                batch = self._pad([rows[i] for i in chunk], chunk)
                limit = run_in_parts(batch, device, limit, generate, what="the guard LM")
        return texts


def check_chat_template(tokenizer: PreTrainedTokenizerBase, guard_format: GuardFormat) -> bool:
    """Warn (:class:`GuardPromptWarning`) when the tokenizer's own chat template renders another prompt than the
    format for a fixed example; True when they agree or there is nothing to compare."""
    probe = guard_format.template_probe("How do I bake bread?", "Mix flour, water and yeast, then bake it.")
    if probe is None or not getattr(tokenizer, "chat_template", None):
        return True
    try:
        theirs = tokenizer.apply_chat_template(
            probe.messages, tokenize=False, add_generation_prompt=True, **probe.options
        )
    except Exception as error:  # a template that cannot take these messages: say so, keep the format's prompt
        warnings.warn(
            f"the model's chat template could not render a {guard_format.name} response check "
            f"({type(error).__name__}: {error}); the format's own prompt is used",
            GuardPromptWarning,
            stacklevel=2,
        )
        return False
    ours = guard_format.render("How do I bake bread?", "Mix flour, water and yeast, then bake it.")
    if theirs == ours:
        return True
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    warnings.warn(
        f"the model's chat template renders another prompt than format {guard_format.name}, from character {at}: "
        f"its {theirs[max(0, at - 40) : at + 40]!r} against {ours[max(0, at - 40) : at + 40]!r}; the format's prompt "
        "is used: check that `format` names this model's format (and report the difference)",
        GuardPromptWarning,
        stacklevel=2,
    )
    return False


def _label_ids(
    tokenizer: PreTrainedTokenizerBase, guard_format: GuardFormat, tokens: tuple[str, str]
) -> tuple[int, int]:
    """The vocabulary ids of a format's two label tokens; a tokenizer without them is the wrong model."""
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in tokens if token not in vocabulary]
    if missing:
        close = difflib.get_close_matches(missing[0], list(vocabulary), n=3)
        raise ModelLoadError(
            f"format {guard_format.name} reads its verdict from the tokens {tokens[0]!r} and {tokens[1]!r}, but this "
            f"model's tokenizer has no {', '.join(repr(t) for t in missing)} (close: {close}); check that `format` "
            "names this model's prompt format"
        )
    return vocabulary[tokens[0]], vocabulary[tokens[1]]


def _check_markup(tokenizer: PreTrainedTokenizerBase, guard_format: GuardFormat) -> None:
    """Each special token of the format's prompt must be one token of this tokenizer."""
    for token in guard_format.markup:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ModelLoadError(
                f"format {guard_format.name} writes {token!r}, which this model's tokenizer splits into {len(ids)} "
                "tokens: the model is not one of this format's; check `format`"
            )


def _context_limit(model: PreTrainedModel) -> int | None:
    """The longest input the model's position embeddings allow, where its (text) config says."""
    config = model.config
    config = getattr(config, "text_config", None) or config
    return getattr(config, "max_position_embeddings", None)


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]
    return sorted({i for i in ids if isinstance(i, int)})


def _until(ids: list[int], stop: list[int]) -> list[int]:
    for position, token in enumerate(ids):
        if token in stop:
            return ids[:position]
    return ids
