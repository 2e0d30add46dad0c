"""Tiny real models for tests: built locally in seconds, no hub, no downloads.

Nothing here fakes a model's output: the models are real transformers models with small configs, either random
or trained for a few seconds on a toy task (answers containing a harmful keyword are harmful).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from protector_models.data.labelled import LabelledPair
from protector_models.detox.data import DetoxExample

HARMFUL_WORDS = ("bomb", "poison", "weapon", "steal")
BENIGN_WORDS = ("cake", "garden", "music", "bread")
QUESTIONS = ("how do i make it", "tell me about this", "what should i do", "can you help me")
_FILLER = ("the", "a", "you", "can", "with", "first", "then", "mix", "use", "it", "is", "here", "some", "and")
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_tokenizer() -> BertTokenizer:
    """A WordPiece tokenizer over the toy vocabulary (unknown words become [UNK])."""
    words = sorted({w for text in QUESTIONS for w in text.split()} | set(_FILLER + HARMFUL_WORDS + BENIGN_WORDS))
    return BertTokenizer(vocab={token: i for i, token in enumerate(_SPECIALS + words)})


def save_tiny_classifier(path: str | Path, *, seed: int = 0, num_labels: int = 1) -> Path:
    """A random two-layer BERT classifier and its tokenizer, saved with ``save_pretrained``."""
    path = Path(path)
    tokenizer = tiny_bert_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    config.num_labels = num_labels
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def toy_examples(count: int, *, seed: int = 0) -> list[LabelledPair]:
    """Labelled pairs whose answer is harmful exactly when it names one of :data:`HARMFUL_WORDS`."""
    generator = random.Random(seed)
    examples = []
    for index in range(count):
        harmful = index % 2 == 0
        topic = generator.choice(HARMFUL_WORDS if harmful else BENIGN_WORDS)
        filler = generator.sample(_FILLER, 5)
        at = generator.randint(0, 5)  # anywhere, so the model learns the word rather than a position
        answer = " ".join([*filler[:at], topic, *filler[at:]])
        examples.append(LabelledPair(generator.choice(QUESTIONS), answer, harmful, source="toy"))
    return examples


def train_keyword_detector(path: str | Path, *, seed: int = 0) -> Path:
    """A tiny classifier trained (full fine-tune, a few seconds) to flag answers with a harmful keyword."""
    from protector_models.training import DetectorTrainingArgs, train_detector

    path = Path(path)
    base = save_tiny_classifier(path / "base", seed=seed)
    args = DetectorTrainingArgs(
        output_dir=str(path / "detector"),
        base=str(base),
        mode="full",
        epochs=8,
        learning_rate=3e-3,
        batch_size=16,
        max_length=64,
        val_fraction=0.0,
        question_dropout=0.0,
        seed=seed,
        device="cpu",
        warmup_ratio=0.0,
    )
    return train_detector(toy_examples(256, seed=seed), args).output_dir


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with no merges: every text round-trips, no vocabulary file needed."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>", *sorted(alphabet)])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def save_tiny_causal_lm(path: str | Path, *, seed: int = 0) -> Path:
    """A random two-layer Llama causal LM with a byte-level tokenizer, saved with ``save_pretrained``."""
    path = Path(path)
    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


FIXED_REWRITE = "I cannot help."
"""What :func:`train_fixed_detoxifier` learns to answer, whatever it is given."""


def toy_detox_examples() -> list[DetoxExample]:
    """Sixteen toy (question, harmful answer) pairs, each with :data:`FIXED_REWRITE` as the target."""
    return [
        DetoxExample(question, f"{filler} {word}", FIXED_REWRITE, source="toy")
        for question in QUESTIONS
        for filler, word in zip(("mix the", "use a", "then", "first take the"), HARMFUL_WORDS, strict=True)
    ]


def train_fixed_detoxifier(path: str | Path, *, seed: int = 0) -> Path:
    """The tiny causal LM fully fine-tuned (a few seconds) to answer :data:`FIXED_REWRITE` and stop."""
    from protector_models.training import DetoxifierTrainingArgs, train_detoxifier

    path = Path(path)
    base = save_tiny_causal_lm(path / "base", seed=seed)
    args = DetoxifierTrainingArgs(
        output_dir=str(path / "detoxifier"),
        base=str(base),
        mode="full",
        max_steps=150,
        learning_rate=1e-2,
        batch_size=8,
        grad_accum=1,
        max_length=320,
        max_target_tokens=32,
        warmup_ratio=0.0,
        seed=seed,
        device="cpu",
    )
    return train_detoxifier(toy_detox_examples(), args).output_dir
