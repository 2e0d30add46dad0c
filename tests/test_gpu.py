"""On a CUDA device: device and dtype choice, agreement with the CPU, order across batch sizes, one readback per
call, a batch too big for the device split and retried, batched generation, both trainers, and the guard LM path
(bf16 by default, agreement with the CPU, padding and batch sizes, one readback, out-of-memory halving, categories).

Skipped without CUDA; on a GPU machine run them alone with ``pytest -m gpu``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from protector_models import CausalLMRewriter, CausalLMRewriterConfig, Pair, Protector, ProtectorConfig
from protector_models.models.detector import ClassifierDetector
from protector_models.models.guard_lm import LlamaGuard3
from protector_models.models.guard_lm.detector import GuardLMDetector
from protector_models.models.quantization import quantize_int8
from protector_models.testing import (
    FIXED_REWRITE,
    save_tiny_causal_lm,
    save_tiny_classifier,
    save_tiny_guard_lm,
    tiny_bert_tokenizer,
    toy_detox_examples,
    toy_examples,
)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

REGRESSION = Path(__file__).parent / "fixtures" / "regression_cases.jsonl"

PAIRS = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "cake"),
    Pair("what should i do " * 5, "here is some music and some bread for you with a garden"),
    Pair("tell me about this", "use the weapon"),
    Pair("can you help me", "first you steal it then"),
    Pair("q", "the garden is here"),
    Pair("how do i make it", "here is some cake and some music " * 30 + "use the weapon"),
    *(Pair(f"q {i}", "some bread " * (i % 9) + ("poison" if i % 3 == 0 else "cake")) for i in range(60)),
]


def keyword_detector(directory: Path, *, batch_size: int = 32, **model: Any) -> ClassifierDetector:
    config = {"detector": {"model": {"source": str(directory), "max_length": 64, **model}, "batch_size": batch_size}}
    detector = Protector.from_config(config).detector
    assert isinstance(detector, ClassifierDetector)
    return detector


def regression_pairs() -> list[Pair]:
    rows = [json.loads(line) for line in REGRESSION.read_text().splitlines() if line.strip()]
    return [Pair(row["question"], row["answer"]) for row in rows]


def test_auto_runs_on_cuda_in_bfloat16_with_sdpa_and_a_pipeline(keyword_detector_dir: Path):
    detector = keyword_detector(keyword_detector_dir)
    assert detector.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert next(detector.model.parameters()).dtype == expected
    assert detector.model.config._attn_implementation == "sdpa"
    assert detector._prefetch_depth(detector.device) > 0


def test_cuda_scores_agree_with_the_cpu(keyword_detector_dir: Path):
    cpu = keyword_detector(keyword_detector_dir, device="cpu", dtype="float32").score(PAIRS)
    cuda = keyword_detector(keyword_detector_dir, device="cuda", dtype="float32").score(PAIRS)
    half = keyword_detector(keyword_detector_dir, device="cuda").score(PAIRS)
    assert cuda == pytest.approx(cpu, abs=1e-4)
    assert half == pytest.approx(cpu, abs=0.05)
    assert [s > 0.5 for s in half] == [s > 0.5 for s in cpu]


def test_the_default_detector_agrees_with_the_cpu():
    pairs = regression_pairs()
    cpu = Protector.from_preset("default", detector={"model": {"device": "cpu"}}).check(pairs)
    cuda32 = Protector.from_preset("default", detector={"model": {"device": "cuda", "dtype": "float32"}}).check(pairs)
    auto = Protector.from_preset("default").check(pairs)  # bfloat16
    assert [v.harm_score for v in cuda32] == pytest.approx([v.harm_score for v in cpu], abs=1e-3)
    differences = [abs(a.harm_score - b.harm_score) for a, b in zip(auto, cpu, strict=True)]  # type: ignore[operator]
    assert max(differences) < 0.1
    assert sum(a.flagged != b.flagged for a, b in zip(auto, cpu, strict=True)) <= 2


@pytest.mark.parametrize("dtype", ["float32", "auto"])
def test_scores_keep_input_order_across_batch_sizes_on_cuda(keyword_detector_dir: Path, dtype: str):
    scores = {
        size: keyword_detector(keyword_detector_dir, device="cuda", dtype=dtype, batch_size=size).score(PAIRS)
        for size in (1, 3, 64)
    }
    tolerance = 1e-4 if dtype == "float32" else 0.05
    assert scores[3] == pytest.approx(scores[1], abs=tolerance)
    assert scores[64] == pytest.approx(scores[1], abs=tolerance)
    assert [s > 0.5 for s in scores[64]] == [s > 0.5 for s in scores[1]]


class _NoSyncClassifier(torch.nn.Module):
    """Mean of token embeddings, then a linear head: a model that never waits for the device itself."""

    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_labels=1, max_position_embeddings=512)
        self.embed = torch.nn.Embedding(vocabulary, 8)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: torch.Tensor) -> SimpleNamespace:
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return SimpleNamespace(logits=self.head(pooled))


def test_a_call_waits_for_the_device_once():
    tokenizer = tiny_bert_tokenizer()
    model = _NoSyncClassifier(len(tokenizer)).cuda().eval()
    detector = ClassifierDetector(model, tokenizer, max_length=24, window_tokens=8, window_stride=4, batch_size=4)  # type: ignore[arg-type]
    detector.score(PAIRS)  # warm-up
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = detector.score(PAIRS)  # dozens of batches, built ahead by the worker thread
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) == 1, [str(w.message) for w in syncs]
    assert len(scores) == len(PAIRS)
    assert all(math.isfinite(s) for s in scores)


def score_under_a_memory_cap(
    detector: ClassifierDetector | GuardLMDetector, pairs: list[Pair], cap_bytes: int
) -> tuple[list[int], list[float]]:
    """The rows of each forward pass and the scores, with this process held to ``cap_bytes`` of GPU memory."""
    rows: list[int] = []
    hook = detector.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(detector.device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), detector.device)
    try:
        scores = detector.score(pairs)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, detector.device)
        hook.remove()
    return rows, scores


def test_a_batch_too_big_for_the_device_is_split_and_retried():
    protector = Protector.from_preset(
        "default", detector={"model": {"device": "cuda", "dtype": "float32"}, "batch_size": 256}
    )
    detector = protector.detector
    assert isinstance(detector, ClassifierDetector)
    pairs = [Pair(f"question {i}", f"answer {i} " + "here is a long and careful reply " * 60) for i in range(256)]
    expected = ClassifierDetector(detector.model, detector.tokenizer, batch_size=8).score(pairs[:16])
    rows, scores = score_under_a_memory_cap(detector, pairs, 2**30)  # 1 GiB in all
    assert rows[0] == 256
    assert min(rows) < 256
    assert scores[:16] == pytest.approx(expected, abs=1e-3)


def test_batched_generation_equals_one_at_a_time_on_cuda(tiny_lm_dir: Path, fixed_detoxifier_dir: Path):
    def rewriter(directory: Path, batch_size: int, dtype: str = "float32") -> CausalLMRewriter:
        model = {"source": str(directory), "device": "cuda", "dtype": dtype}
        config = {"model": model, "max_new_tokens": 24, "batch_size": batch_size}
        return CausalLMRewriter.from_config(CausalLMRewriterConfig.model_validate(config))

    pairs = PAIRS[:6]
    batched = rewriter(tiny_lm_dir, 6).rewrite(pairs)
    assert batched == [rewriter(tiny_lm_dir, 1).rewrite([pair])[0] for pair in pairs]
    assert len(set(batched)) > 1
    assert rewriter(fixed_detoxifier_dir, 6, "auto").rewrite(pairs) == [FIXED_REWRITE] * len(pairs)


@pytest.mark.parametrize(("mode", "precision"), [("full", "float32"), ("lora", "bfloat16")])
def test_detector_training_runs_on_cuda(tmp_path: Path, mode: str, precision: str):
    from protector_models.training import DetectorTrainingArgs, train_detector

    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "detector"),
        base=str(base),
        mode=mode,  # type: ignore[arg-type]
        epochs=2,
        learning_rate=3e-3,
        batch_size=16,
        max_length=64,
        val_fraction=0.25,
        question_dropout=0.0,
        precision=precision,  # type: ignore[arg-type]
        device="cuda",
        warmup_ratio=0.0,
    )
    outcome = train_detector(toy_examples(96), args)
    assert outcome.losses
    assert all(math.isfinite(loss) for loss in outcome.losses)
    protector = Protector.from_yaml(outcome.output_dir / "protector.yaml")  # device auto: CUDA
    assert protector.detector.device.type == "cuda"  # type: ignore[attr-defined]
    assert all(0.0 <= v.harm_score <= 1.0 for v in protector.check(PAIRS[:4]))  # type: ignore[operator]


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_detoxifier_training_runs_on_cuda(tmp_path: Path, mode: str):
    from protector_models.training import DetoxifierTrainingArgs, train_detoxifier

    base = save_tiny_causal_lm(tmp_path / "base")
    args = DetoxifierTrainingArgs(
        output_dir=str(tmp_path / "detoxifier"),
        base=str(base),
        mode=mode,  # type: ignore[arg-type]
        max_steps=6,
        learning_rate=1e-2,
        batch_size=4,
        grad_accum=2,
        max_length=256,
        max_target_tokens=16,
        warmup_ratio=0.0,
        device="cuda",
    )
    outcome = train_detoxifier(toy_detox_examples(), args)
    assert outcome.steps == 6
    assert all(math.isfinite(loss) for loss in outcome.losses)
    config = ProtectorConfig.from_yaml(outcome.output_dir / "protector.yaml").rewriter  # device auto: CUDA
    assert isinstance(config, CausalLMRewriterConfig)
    rewriter = CausalLMRewriter.from_config(config)
    assert rewriter.model.device.type == "cuda"
    assert len(rewriter.rewrite(PAIRS[:2])) == 2


def test_int8_is_refused_for_a_model_on_cuda(keyword_detector_dir: Path):
    detector = keyword_detector(keyword_detector_dir, device="cuda")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        quantize_int8(detector.model)


def guard_detector(directory: Path, **options: Any) -> GuardLMDetector:
    model = {"source": str(directory), "max_length": 2048, **options.pop("model", {})}
    config = {"detector": {"kind": "guard_lm", "format": "llama-guard-3", "model": model, **options}}
    detector = Protector.from_config(config).detector
    assert isinstance(detector, GuardLMDetector)
    return detector


@pytest.fixture(scope="module")
def tiny_guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_guard_lm(tmp_path_factory.mktemp("tiny-guard"), LlamaGuard3())


def test_a_guard_lm_runs_on_cuda_in_bfloat16_and_agrees_with_the_cpu(tiny_guard_dir: Path):
    auto = guard_detector(tiny_guard_dir)
    assert auto.device.type == "cuda"
    assert next(auto.model.parameters()).dtype in (torch.bfloat16, torch.float16)
    cpu = guard_detector(tiny_guard_dir, model={"device": "cpu", "dtype": "float32"}).score(PAIRS)
    cuda = guard_detector(tiny_guard_dir, model={"device": "cuda", "dtype": "float32"}).score(PAIRS)
    assert cuda == pytest.approx(cpu, abs=1e-4)
    assert auto.score(PAIRS) == pytest.approx(cpu, abs=0.02)


def test_guard_scores_are_the_same_whatever_the_padding_and_batch_size_on_cuda(tiny_guard_dir: Path):
    reference = guard_detector(tiny_guard_dir, model={"device": "cuda", "dtype": "float32"}, batch_size=1)
    expected = reference.score(PAIRS[:12])
    for side in ("left", "right"):
        for batch_size in (3, 8, 12):
            detector = guard_detector(
                tiny_guard_dir, model={"device": "cuda", "dtype": "float32"}, batch_size=batch_size
            )
            detector.padding_side = side
            assert detector.score(PAIRS[:12]) == pytest.approx(expected, abs=1e-5)


def test_a_guard_lm_waits_for_the_device_once_per_call(tiny_guard_dir: Path):
    detector = guard_detector(tiny_guard_dir, batch_size=4)
    detector.score(PAIRS[:4])  # warm-up
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = detector.score(PAIRS)  # many batches, no categories
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    assert len(syncs) == 1, [str(w.message) for w in syncs]
    assert len(scores) == len(PAIRS)


def test_a_guard_batch_too_big_for_the_device_is_split_and_retried(tiny_guard_dir: Path):
    detector = guard_detector(tiny_guard_dir, model={"device": "cuda", "dtype": "float32"}, batch_size=256)
    pairs = [Pair(f"question {i}", f"answer {i} " + "a long and careful reply " * 40) for i in range(256)]
    expected = guard_detector(tiny_guard_dir, model={"device": "cuda", "dtype": "float32"}, batch_size=4).score(
        pairs[:8]
    )
    rows, scores = score_under_a_memory_cap(detector, pairs, 2**29)  # 512 MiB in all
    assert rows[0] == 256
    assert min(rows) < 256
    assert scores[:8] == pytest.approx(expected, abs=1e-4)


def test_llama_guard_categories_on_cuda_equal_the_cpu_ones(tiny_llama_guard_dir: Path):
    from tests.conftest import TINY_GUARD_CATEGORIES

    def judged(device: str) -> list[dict]:
        detector = guard_detector(
            tiny_llama_guard_dir,
            model={"device": device, "dtype": "float32"},
            excluded_categories=TINY_GUARD_CATEGORIES,
            category_threshold=0.0,
        )
        return [dict(j.categories) for j in detector.judge(PAIRS[:6])]

    assert judged("cuda") == judged("cpu") == [{"S10: Hate": True}] * 6
