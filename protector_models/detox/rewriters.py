"""Rewriters turn a flagged answer into a harmless one: ``rewrite(pairs) -> list[str]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from protector_models.config.schema import DEFAULT_REFUSAL, CausalLMRewriterConfig
from protector_models.pairs import Pair

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@runtime_checkable
class Rewriter(Protocol):
    """Rewrites each flagged answer; returns one text per pair, in input order."""

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        """The harmless replacement for each pair's answer."""
        ...


class RefusalRewriter:
    """The rewriter of last resort: a fixed refusal."""

    def __init__(self, text: str = DEFAULT_REFUSAL) -> None:
        self.text = text

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        """The refusal text for every pair."""
        return [self.text] * len(pairs)


class CausalLMRewriter:
    """The paper's detoxifier: a causal LM given the question and the harmful answer, decoding greedily.

    Prompts are batched by length with left padding; only the newly generated tokens are decoded.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        max_length: int = 2048,
    ) -> None:
        if max_length <= max_new_tokens:
            raise ValueError(f"max_length ({max_length}) must exceed max_new_tokens ({max_new_tokens})")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def from_config(cls, config: CausalLMRewriterConfig) -> Self:
        """Load the model named by ``config.model`` and wrap it."""
        from protector_models.models.loading import load_causal_lm  # torch and transformers only where a model loads

        loaded = load_causal_lm(config.model)
        return cls(
            loaded.model,
            loaded.tokenizer,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            max_length=config.model.max_length,
        )

    def rewrite(self, pairs: Sequence[Pair]) -> list[str]:
        """Greedy rewrites, cut at the first end-of-sequence token and stripped of surrounding whitespace.

        Deterministic: greedy search whatever the model's own generation config says about sampling. Batches
        pad on the left, so each prompt ends where generation starts and a batched rewrite equals the one
        generated alone.
        """
        import torch

        from protector_models.models.batching import length_sorted_batches, pad_features
        from protector_models.models.templates import detoxify_prompts

        if not pairs:
            return []
        budget = self.max_length - self.max_new_tokens
        prompts = detoxify_prompts(self.tokenizer, pairs, budget)
        features = dict(self.tokenizer(prompts, truncation=True, max_length=budget))
        lengths = [len(ids) for ids in features["input_ids"]]
        outputs = [""] * len(pairs)
        device = next(self.model.parameters()).device
        stop = self.stop_token_ids
        with torch.inference_mode():
            for chunk in length_sorted_batches(lengths, self.batch_size):
                batch = pad_features(features, chunk, pad_token_id=self.tokenizer.pad_token_id, padding_side="left")
                batch.pop("token_type_ids", None)
                generated = self.model.generate(  # type: ignore[operator]
                    **{key: value.to(device) for key, value in batch.items()},
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=stop,
                )
                new_tokens = generated[:, batch["input_ids"].shape[1] :].tolist()
                texts = self.tokenizer.batch_decode([_until(ids, stop) for ids in new_tokens], skip_special_tokens=True)
                for index, text in zip(chunk, texts, strict=True):
                    outputs[index] = text.strip()
        return outputs

    @property
    def stop_token_ids(self) -> list[int]:
        """The tokenizer's EOS and every EOS the model's generation config names (chat models often add one)."""
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = [self.tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]
        return sorted({i for i in ids if isinstance(i, int)})


def _until(ids: list[int], stop: list[int]) -> list[int]:
    """The tokens before the first stop token (finished rows of a batch are padded after it)."""
    for position, token in enumerate(ids):
        if token in stop:
            return ids[:position]
    return ids
