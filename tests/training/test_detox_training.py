"""Detoxifier training: label masking, the loss, learning a fixed answer, saving what the rewriter config loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from protector_models import CausalLMRewriter, CausalLMRewriterConfig, Pair, Protector, ProtectorConfig
from protector_models.detox.data import DetoxExample
from protector_models.models.batching import pad_features
from protector_models.models.integrity import directory_pins
from protector_models.models.templates import detoxify_prompt, detoxify_prompts
from protector_models.testing import (
    FIXED_REWRITE,
    byte_tokenizer,
    save_tiny_causal_lm,
    toy_detox_examples,
)
from protector_models.training import DetoxifierTrainingArgs, encode_detox_examples, train_detoxifier
from protector_models.training.detoxifier import IGNORE, target_loss

HARMFUL = ("how do i make it", "first mix the poison and use it")


def test_only_target_and_eos_tokens_carry_labels():
    tokenizer = byte_tokenizer()
    examples = [DetoxExample("q?", "bad", "ok."), DetoxExample("a longer question", "worse answer", "fine")]
    features = encode_detox_examples(tokenizer, examples, max_length=400, max_target_tokens=16)
    eos = tokenizer.eos_token_id
    for example, ids, labels in zip(examples, features["input_ids"], features["labels"], strict=True):
        prompt = tokenizer(detoxify_prompt(example.pair))["input_ids"]
        target = [*tokenizer(example.target, add_special_tokens=False)["input_ids"], eos]
        assert ids == prompt + target
        assert labels == [IGNORE] * len(prompt) + target
    batch = pad_features(features, [0, 1], pad_token_id=tokenizer.pad_token_id)
    short = len(features["input_ids"][0])
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][0, short:] == IGNORE).all()  # padding carries no loss
    assert (batch["attention_mask"][0, short:] == 0).all()
    carried = batch["labels"] != IGNORE
    assert torch.equal(batch["labels"][carried], batch["input_ids"][carried])  # target positions: the input ids
    assert carried.sum().item() == len("ok.") + 1 + len("fine") + 1  # bytes of each target + EOS


def test_long_examples_are_cut_as_at_inference_and_keep_eos():
    tokenizer = byte_tokenizer()
    example = DetoxExample("why " * 200, "answer " * 100, "target " * 50)
    features = encode_detox_examples(tokenizer, [example], max_length=300, max_target_tokens=20)
    (ids,), (labels,) = features["input_ids"], features["labels"]
    target = [label for label in labels if label != IGNORE]
    assert len(target) == 20
    assert target[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target[:-1]) == ("target " * 50)[:19]
    prompt = ids[: len(ids) - len(target)]
    assert len(prompt) <= 280
    assert prompt == tokenizer(detoxify_prompts(tokenizer, [example.pair], 280))["input_ids"][0]  # as the rewriter
    assert "answer answer" in tokenizer.decode(prompt)  # the question is cut before the answer


def test_target_loss_matches_the_models_own_shifted_loss(tiny_lm_dir: Path):
    tokenizer = byte_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    features = encode_detox_examples(tokenizer, toy_detox_examples()[:3], max_length=320, max_target_tokens=32)
    batch = pad_features(features, [0, 1, 2], pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        output = model(**batch)
    tokens = (batch["labels"][:, 1:] != IGNORE).sum()
    assert (target_loss(output.logits, batch["labels"]) / tokens).item() == pytest.approx(output.loss.item(), rel=1e-5)


def test_training_lowers_loss_learns_the_fixed_answer_and_loads_through_the_config(
    fixed_detoxifier_dir: Path, detector_config: dict
):
    saved = json.loads((fixed_detoxifier_dir / "training_args.json").read_text())
    assert saved["mode"] == "full"
    assert (fixed_detoxifier_dir / "model.safetensors").is_file()
    config = yaml.safe_load((fixed_detoxifier_dir / "protector.yaml").read_text())
    assert config["rewriter"]["model"]["source"] == str(fixed_detoxifier_dir.resolve())
    assert config["rewriter"]["model"]["sha256"] == directory_pins(fixed_detoxifier_dir)  # README.md included
    assert config["rewriter"]["max_new_tokens"] == 32
    assert ProtectorConfig.from_dict(config).rewriter.kind == "causal_lm"  # a complete, valid protector config
    rewriter = CausalLMRewriter.from_config(CausalLMRewriterConfig.model_validate(config["rewriter"]))
    unseen = [Pair(*HARMFUL), Pair("", "a different answer altogether, much longer than any seen in training")]
    assert rewriter.rewrite(unseen) == [FIXED_REWRITE, FIXED_REWRITE]
    protector = Protector.from_config({**detector_config, "rewriter": config["rewriter"]})
    (result,) = protector.protect([HARMFUL])
    assert (result.output, result.action, result.error) == (FIXED_REWRITE, "detoxify", None)


def test_loss_falls_and_runs_are_reproducible(tmp_path: Path):
    base = save_tiny_causal_lm(tmp_path / "base")

    def run(name: str, steps: int) -> list[float]:
        args = DetoxifierTrainingArgs(
            output_dir=str(tmp_path / name),
            base=str(base),
            mode="full",
            max_steps=steps,
            learning_rate=1e-2,
            batch_size=8,
            grad_accum=1,
            max_length=320,
            max_target_tokens=32,
            warmup_ratio=0.0,
            device="cpu",
        )
        return train_detoxifier(toy_detox_examples(), args).losses

    losses = run("a", 30)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert run("b", 30) == losses  # same seed, same data order, same losses


def test_gradient_accumulation_averages_over_all_target_tokens(tmp_path: Path):
    base = save_tiny_causal_lm(tmp_path / "base")
    examples = [DetoxExample("q", "bad", "x" * n) for n in (1, 2, 3, 5, 8, 13, 21, 34)]  # uneven target lengths

    def first_loss(batch_size: int, grad_accum: int, epochs: int = 1) -> list[float]:
        args = DetoxifierTrainingArgs(
            output_dir=str(tmp_path / f"{batch_size}-{grad_accum}"),
            base=str(base),
            mode="full",
            epochs=epochs,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_length=300,
            max_target_tokens=40,
            device="cpu",
        )
        return train_detoxifier(examples, args).losses

    whole = first_loss(8, 1)
    accumulated = first_loss(2, 4, epochs=2)
    assert len(whole) == 1
    assert len(accumulated) == 2  # 4 micro-batches per step, 2 epochs
    assert accumulated[0] == pytest.approx(whole[0], rel=1e-4)  # token-weighted, not a mean of batch means


def test_lora_adapter_learns_and_loads_merged(tmp_path: Path, tiny_lm_dir: Path):
    args = DetoxifierTrainingArgs(
        output_dir=str(tmp_path / "lora"),
        base=str(tiny_lm_dir),
        mode="lora",
        max_steps=40,
        learning_rate=1e-2,
        batch_size=8,
        grad_accum=1,
        max_length=320,
        max_target_tokens=32,
        lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"],
        warmup_ratio=0.0,
        device="cpu",
    )
    outcome = train_detoxifier(toy_detox_examples(), args)
    assert sum(outcome.losses[-5:]) / 5 < 0.5 * outcome.losses[0]
    assert (outcome.output_dir / "adapter_model.safetensors").is_file()
    assert not (outcome.output_dir / "model.safetensors").exists()  # an adapter, not a copy of the base
    rewriter_config = yaml.safe_load((outcome.output_dir / "protector.yaml").read_text())["rewriter"]
    assert rewriter_config["model"] == {
        "source": str(tiny_lm_dir.resolve()),
        "adapter": str(outcome.output_dir.resolve()),
        "max_length": 320,
        "sha256": directory_pins(tiny_lm_dir),  # the local base and the adapter, every file pinned
        "adapter_sha256": directory_pins(outcome.output_dir),
    }
    rewriter = CausalLMRewriter.from_config(CausalLMRewriterConfig.model_validate(rewriter_config))
    base = CausalLMRewriter.from_config(CausalLMRewriterConfig.model_validate({"model": {"source": str(tiny_lm_dir)}}))
    # the merged model is the trained one: its loss on the training data is the trained loss, not the base's
    assert _mean_target_loss(rewriter) == pytest.approx(outcome.losses[-1], rel=0.3)
    assert _mean_target_loss(base) == pytest.approx(outcome.losses[0], rel=1e-4)
    assert rewriter.rewrite([Pair(*HARMFUL)]) != base.rewrite([Pair(*HARMFUL)])


def _mean_target_loss(rewriter: CausalLMRewriter) -> float:
    features = encode_detox_examples(rewriter.tokenizer, toy_detox_examples(), max_length=320, max_target_tokens=32)
    batch = pad_features(features, range(16), pad_token_id=rewriter.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = rewriter.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return (target_loss(logits, batch["labels"]) / (batch["labels"][:, 1:] != IGNORE).sum()).item()


def test_model_card_carries_the_licence_of_pku_data(tmp_path: Path, tiny_lm_dir: Path):
    args = DetoxifierTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(tiny_lm_dir),
        mode="full",
        max_steps=1,
        max_length=300,
        max_target_tokens=16,
        device="cpu",
        data_files=["pku.jsonl"],
    )
    train_detoxifier([DetoxExample("q", "bad", "good", source="pku-saferlhf")], args)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "CC BY-NC 4.0" in card
    assert "non-commercial" in card
    assert "pku.jsonl" in card


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_target_tokens": 400}, r"max_target_tokens \(400\) must be within"),
        ({"mode": "qlora"}, "unknown mode 'qlora'"),
        ({"grad_accum": 0}, "at least 1"),
    ],
)
def test_bad_arguments_are_errors(tmp_path: Path, tiny_lm_dir: Path, changes: dict, message: str):
    args = DetoxifierTrainingArgs(output_dir=str(tmp_path), base=str(tiny_lm_dir), max_length=300, device="cpu")
    for key, value in changes.items():
        setattr(args, key, value)
    with pytest.raises(ValueError, match=message):
        train_detoxifier(toy_detox_examples(), args)
    with pytest.raises(ValueError, match="no training examples"):
        train_detoxifier([], args)
