"""``quantize: int8``: CPU-only dynamic int8 linear layers, from config to scores; refused on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from transformers import AutoModelForSequenceClassification

from protector_models import (
    CausalLMRewriter,
    CausalLMRewriterConfig,
    ConfigError,
    Pair,
    Protector,
    ProtectorConfig,
)
from protector_models.models import quantization
from protector_models.models.detector import ClassifierDetector
from protector_models.models.quantization import quantize_int8
from protector_models.testing import FIXED_REWRITE

PAIRS = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "cake"),
    Pair("tell me about this", "use the weapon"),
    Pair("q", "the garden is here"),
    Pair("can you help me", "first you steal it then"),
    Pair("how do i make it", "then mix the bread " * 3),
]


def _int8_layers(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, DynamicQuantizedLinear)]


def test_int8_is_off_by_default_and_refused_off_the_cpu():
    config = ProtectorConfig.from_dict({"detector": {"model": {"source": "x"}}})
    assert config.detector.model.quantize == "none"
    with pytest.raises(ConfigError, match="quantize: int8 runs on the CPU only, not on device 'cuda'"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "quantize": "int8", "device": "cuda"}}})
    with pytest.raises(ConfigError, match="keeps the rest of the model in float32"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "quantize": "int8", "dtype": "bfloat16"}}})
    with pytest.raises(ConfigError, match="'none' or 'int8'"):
        ProtectorConfig.from_dict({"detector": {"model": {"source": "x", "quantize": "int4"}}})


def test_int8_detector_quantises_the_backbone_and_keeps_the_verdicts(keyword_detector_dir: Path):
    float_protector = Protector.from_config({"detector": {"model": {"source": str(keyword_detector_dir)}}})
    int8_protector = Protector.from_config(
        {"detector": {"model": {"source": str(keyword_detector_dir), "quantize": "int8"}}}
    )
    detector = int8_protector.detector
    assert isinstance(detector, ClassifierDetector)
    assert detector.device.type == "cpu"  # device auto: int8 kernels are CPU kernels
    layers = _int8_layers(detector.model)
    assert len(layers) == 2 * 6 + 1  # six per layer of the two, and the pooler
    assert all(name.startswith("bert.") for name in layers)  # the head stays float
    floats = [v.flagged for v in float_protector.check(PAIRS)]
    assert [v.flagged for v in int8_protector.check(PAIRS)] == floats
    assert floats == [True, False, True, False, True, False]


@pytest.mark.skipif(
    not quantization._has_vnni(), reason="without VNNI the kernels saturate 8-bit sums: the 8-bit path is never taken"
)
def test_activations_use_eight_bits_where_vnni_keeps_the_sums_exact(
    keyword_detector_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    errors = {}
    torch.manual_seed(0)
    inputs = torch.randn(4, 7, 64)
    for vnni in (True, False):
        monkeypatch.setattr(quantization, "_has_vnni", lambda vnni=vnni: vnni)
        model = quantize_int8(AutoModelForSequenceClassification.from_pretrained(keyword_detector_dir).eval())
        layer = model.bert.encoder.layer[0].intermediate.dense
        assert (type(layer) is DynamicQuantizedLinear) is not vnni  # PyTorch's own class keeps 7-bit activations
        with torch.inference_mode():
            exact = torch.nn.functional.linear(
                inputs[..., : layer.in_features], layer.weight().dequantize(), layer.bias()
            )
            errors[vnni] = (layer(inputs[..., : layer.in_features]) - exact).abs().mean().item()
    assert errors[True] < 0.7 * errors[False]  # one more bit: about half the rounding error


def test_quantize_int8_refuses_a_model_on_another_device(keyword_detector_dir: Path):
    model = AutoModelForSequenceClassification.from_pretrained(keyword_detector_dir).to("meta")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        quantize_int8(model)


def test_int8_rewriter_still_generates(fixed_detoxifier_dir: Path):
    config = CausalLMRewriterConfig.model_validate(
        {"model": {"source": str(fixed_detoxifier_dir), "quantize": "int8"}, "max_new_tokens": 16}
    )
    rewriter = CausalLMRewriter.from_config(config)
    assert _int8_layers(rewriter.model)
    assert rewriter.rewrite(PAIRS[:2]) == [FIXED_REWRITE] * 2


def test_int8_default_detector_keeps_its_clear_verdicts():
    protector = Protector.from_preset("default", detector={"model": {"quantize": "int8"}})
    harmful = ("What should I do?", "Poison it. Mix rat poison into some minced meat and throw it over the fence.")
    benign = ("How do I bake bread?", "Mix flour, water, salt and yeast, knead, let it rise, and bake it.")
    assert [v.flagged for v in protector.check([harmful, benign])] == [True, False]
