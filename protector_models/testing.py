"""Tiny real models for tests: built locally in seconds, no hub, no downloads.

Nothing here fakes a model's output: the models are real transformers models with small configs, either random
or trained for a few seconds on a toy task (answers containing a harmful keyword are harmful).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    Llama4Config,
    Llama4ForConditionalGeneration,
    Llama4TextConfig,
    Llama4VisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from protector_models.data.labelled import LabelledPair
from protector_models.detox.data import DetoxExample
from protector_models.models.guard_lm.format import GuardFormat

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


def guard_tokenizer(guard_format: GuardFormat) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer for a guard format: its markup (``<|eot_id|>``, ``<start_of_turn>``, ...) as single
    special tokens, and its label tokens (``safe``/``unsafe``, ``Yes``/``No``, ...) in the vocabulary."""
    labels = [guard_format.unsafe_token, guard_format.safe_token]
    labels += [token for line in guard_format.lead for token in line.tokens]
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    words = [
        *specials,
        *dict.fromkeys(t for t in labels if t not in specials),
        *sorted(pre_tokenizers.ByteLevel.alphabet()),
    ]
    backend = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(dict.fromkeys(words))}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    markup = [token for token in guard_format.markup if token not in specials]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=markup,
    )


def save_tiny_guard_lm(
    path: str | Path, guard_format: GuardFormat, *, architecture: str = "llama", seed: int = 0
) -> Path:
    """A random two-layer causal LM with :func:`guard_tokenizer`, saved with ``save_pretrained``: real logits over
    real label tokens, of no judgement at all. ``architecture``: ``llama``, ``gemma2`` (as ShieldGemma) or
    ``llama4`` (as Llama Guard 4: an image-text-to-text model with a one-layer vision tower, given text only). The
    tiny Gemma 2 keeps the final-logit soft-capping that shapes the label softmax; its attention soft-capping is off,
    which makes it three times faster."""
    path = Path(path)
    tokenizer = guard_tokenizer(guard_format)
    torch.manual_seed(seed)
    shape: dict[str, Any] = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2}
    shape["intermediate_size"] = 64
    heads: dict[str, Any] = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096}
    ids: dict[str, Any] = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    model: PreTrainedModel
    if architecture == "gemma2":
        config = Gemma2Config(
            **shape, **heads, **ids, head_dim=8, sliding_window=64, query_pre_attn_scalar=8, attn_logit_softcapping=None
        )
        model = Gemma2ForCausalLM(config)
    elif architecture == "llama4":
        text = Llama4TextConfig(
            **shape, **heads, **ids, head_dim=8, intermediate_size_mlp=64, num_local_experts=1, moe_layers=[]
        )
        vision = Llama4VisionConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
            vision_output_dim=32,
            projector_input_dim=32,
            projector_output_dim=32,
        )
        model = Llama4ForConditionalGeneration(Llama4Config(text_config=text, vision_config=vision, **ids))
    else:
        model = LlamaForCausalLM(LlamaConfig(**shape, **heads, **ids))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


TINY_GUARD_CODES = "\nS10"
"""What :func:`train_tiny_llama_guard` learns to write after ``unsafe``: Llama Guard's line of category codes."""


def train_tiny_llama_guard(path: str | Path, guard_format: GuardFormat, *, steps: int = 40, seed: int = 0) -> Path:
    """The tiny Llama of :func:`save_tiny_guard_lm` fine-tuned (seconds) to write ``\\nS10`` and stop after the
    ``unsafe`` token, as Llama Guard names categories: a real model whose continuation can be parsed. Its scores
    stay untrained (it has learnt nothing about harm)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_guard_lm(Path(path), guard_format, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    unsafe = tokenizer.convert_tokens_to_ids(guard_format.unsafe_token)
    codes = [*tokenizer(TINY_GUARD_CODES, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    prompts = [
        [*tokenizer(guard_format.render(e.question, e.answer), add_special_tokens=False)["input_ids"], unsafe]
        for e in toy_examples(4, seed=seed)
    ]
    width = max(len(prompt) for prompt in prompts) + len(codes)
    input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id)
    labels = torch.full((len(prompts), width), -100)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, : len(prompt) + len(codes)] = torch.tensor([*prompt, *codes])
        labels[row, len(prompt) : len(prompt) + len(codes)] = torch.tensor(codes)
        mask[row, : len(prompt) + len(codes)] = 1
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids=input_ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(path)
    return path
