"""Guard LM speed, on a model of a real guard's architecture with RANDOM weights (the weights cannot be downloaded
here): ``GuardLMDetector.score`` batched against one pair per call, and peak memory.

    python benchmarks/bench_detector.py --shape llama-guard-3-8b|llama-guard-3-1b|shieldgemma-2b
        [--device auto] [--dtype auto] [--pairs 16] [--batch-size 8] [--layers N] [--repeats 2]

(or ``python benchmarks/bench_guard.py`` with the same options). The model has the architecture's real sizes
(hidden, heads, vocabulary: the label softmax reads logits at one position only); ``--layers N`` keeps N of its
layers, for CPUs where the whole model does not fit or takes minutes a pair: per-layer cost dominates both
timings alike, so their ratio holds, not the absolute rates. The tokenizer is MiniLM's WordPiece (bundled) with the
format's special and label tokens added: about as many tokens per English word as the real tokenizers. Scores
mean nothing; speed and memory are the architecture's.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_detector import mixed_pairs, synchronize
from transformers import (
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
)

from protector_models.models.bundled import minilm_dir
from protector_models.models.devices import resolve_device, resolve_dtype
from protector_models.models.guard_lm import LlamaGuard3, ShieldGemma
from protector_models.models.guard_lm.detector import GuardLMDetector
from protector_models.models.guard_lm.format import GuardFormat

GUARD_SHAPES: dict[
    str, tuple[type[PreTrainedModel], Callable[[int | None], PretrainedConfig], Callable[[], GuardFormat]]
] = {
    "llama-guard-3-8b": (  # Llama 3.1 8B
        LlamaForCausalLM,
        lambda layers: LlamaConfig(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=layers or 32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
        ),
        LlamaGuard3,
    ),
    "llama-guard-3-1b": (  # Llama 3.2 1B (tied embeddings)
        LlamaForCausalLM,
        lambda layers: LlamaConfig(
            vocab_size=128256,
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=layers or 16,
            num_attention_heads=32,
            num_key_value_heads=8,
            head_dim=64,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
        ),
        lambda: LlamaGuard3(excluded=["S14"]),
    ),
    "shieldgemma-2b": (  # Gemma 2 2B
        Gemma2ForCausalLM,
        lambda layers: Gemma2Config(
            vocab_size=256000,
            hidden_size=2304,
            intermediate_size=9216,
            num_hidden_layers=layers or 26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            max_position_embeddings=8192,
            sliding_window=4096,
            query_pre_attn_scalar=256,
        ),
        ShieldGemma,
    ),
}


def guard_tokenizer_for_speed(guard_format: GuardFormat) -> Any:
    """MiniLM's fast WordPiece tokenizer with the format's markup as special tokens and its labels as tokens."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.add_special_tokens({"additional_special_tokens": list(guard_format.markup)})
    tokenizer.add_tokens(
        [t for t in (guard_format.unsafe_token, guard_format.safe_token) if t not in tokenizer.get_vocab()]
    )
    return tokenizer


def build(options: argparse.Namespace) -> tuple[GuardLMDetector, str]:
    model_class, make_config, make_format = GUARD_SHAPES[options.shape]
    guard_format = make_format()
    tokenizer = guard_tokenizer_for_speed(guard_format)
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    config = make_config(options.layers)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = model_class(config).eval()
    finally:
        torch.set_default_dtype(previous)
    detector = GuardLMDetector(model, tokenizer, guard_format, max_length=4096, batch_size=options.batch_size)
    layers = f"{config.num_hidden_layers} of {make_config(None).num_hidden_layers} layers"
    parameters = sum(p.numel() for p in model.parameters()) / 1e9
    label = f"shape={options.shape} ({layers}, {parameters:.2f}B parameters; RANDOM WEIGHTS: speed only)"
    return detector, label


def run(options: argparse.Namespace) -> None:
    detector, label = build(options)
    device = detector.device
    pairs = mixed_pairs(options.pairs)
    prompts = detector.builder.prompts(pairs)
    tokens = sum(len(p.input_ids) for p in prompts) / len(prompts)
    detector.score(pairs[:2])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best = {"batched": float("inf"), "single": float("inf")}
    for _ in range(options.repeats):
        for name, call in (
            ("batched", lambda: detector.score(pairs)),
            ("single", lambda: [detector.score([p]) for p in pairs]),
        ):
            started = time.perf_counter()
            call()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - started)
    print(label)
    print(
        f"device={device} dtype={next(detector.model.parameters()).dtype} threads={torch.get_num_threads()} "
        f"pairs={len(pairs)} prompts={len(prompts)} mean_tokens={tokens:.0f} batch_size={detector.batch_size} "
        f"repeats={options.repeats} (best of)"
    )
    for name in ("batched", "single"):
        print(f"{name:8} {len(pairs) / best[name]:10.3f} pairs/s  {1000 * best[name] / len(pairs):10.1f} ms/pair")
    print(f"batched / one at a time = {best['single'] / best['batched']:.2f}x")
    print(f"host RSS: peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if device.type == "cuda":
        print(f"peak device memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated")


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", type=int, help="keep this many of the architecture's layers (default: all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(GUARD_SHAPES), required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    add_options(parser)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
