"""Detector speed: batched ``Protector.check`` against one pair at a time and a bare forward; latency; memory.

    python benchmarks/bench_detector.py [--preset default | --config protector.yaml | --shape NAME]
        [--device auto|cpu|cuda[:n]] [--dtype auto|float32|bfloat16|float16] [--quantize none|int8]
        [--pairs 256] [--batch-size 32] [--single-pairs N] [--latency-runs 50] [--repeats 3] [--prefetch N]
        [--vs-float32] [--profile]

Measures, in this run and on one device:

(a) ``Protector.check`` over all pairs, batched (tokenising, windows, padding, copies, model, scores);
(b) the same pairs one ``check`` call each (``--single-pairs`` limits how many, for big models on a CPU);
(c) a bare ``model(**batch)`` over the very batches (a), already padded and on the device: the limit;

each the best of ``--repeats`` rounds, the three taken in turn in every round so that load from other processes
falls on all of them alike. Then p50/p99 latency of ``check`` on one pair of about 200 tokens, p50/p99 over the
pairs of (b), and peak host memory (RSS) and device memory. Report ratios, which hold on a busy machine better
than absolute rates do. ``--vs-float32`` also times the same model in float32 in the same rounds (the speed-up
of ``--dtype bfloat16`` or ``--quantize int8``); ``--profile`` prints where one-pair calls spend their time.

``--shape llama-guard-3-8b|llama-guard-3-1b|shieldgemma-2b`` times a guard LM of that architecture instead (random
weights; see ``bench_guard.py``: batched against one pair at a time, and peak memory; ``--layers N`` keeps N
layers).

``--shape minilm|mpnet-base|open_llama_3b|llama-2-7b`` times a model of that architecture with RANDOM weights,
built here (nothing is downloaded): its scores mean nothing, its speed is the real architecture's. Encoders get
MiniLM's WordPiece tokenizer (from the bundled package); decoders get the same tokenizer with the paper's
template (about as many tokens per English word as Llama's SentencePiece). Llama shapes need ``--dtype
bfloat16`` on a CPU with less than 30 GB (7B) of memory, and small ``--pairs`` there.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    MPNetConfig,
    MPNetForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from protector_models import ClassifierDetector, Pair, Protector, ProtectorConfig
from protector_models.models.bundled import minilm_dir
from protector_models.models.devices import resolve_device, resolve_dtype
from protector_models.models.quantization import quantize_int8

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "image",
    "shows",
    "how",
    "to",
    "make",
    "safe",
    "step",
    "first",
    "then",
    "water",
    "heat",
    "light",
    "can",
    "will",
]

SHAPES: dict[str, tuple[type[PreTrainedModel], Callable[[], PretrainedConfig], str]] = {
    "minilm": (
        BertForSequenceClassification,
        lambda: BertConfig(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
        ),
        "text_pair",
    ),
    "mpnet-base": (
        MPNetForSequenceClassification,
        lambda: MPNetConfig(
            vocab_size=30527,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=514,
        ),
        "text_pair",
    ),
    "open_llama_3b": (
        LlamaForSequenceClassification,
        lambda: LlamaConfig(
            vocab_size=32000,
            hidden_size=3200,
            intermediate_size=8640,
            num_hidden_layers=26,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
        ),
        "paper",
    ),
    "llama-2-7b": (
        LlamaForSequenceClassification,
        lambda: LlamaConfig(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        ),
        "paper",
    ),
}


def mixed_pairs(count: int, seed: int = 0) -> list[Pair]:
    """Pairs whose answers run from a few words to several hundred (long ones become several windows)."""
    generator = random.Random(seed)
    pairs = []
    for _ in range(count):
        answer_words = int(generator.lognormvariate(4.0, 1.0)) + 3
        question = " ".join(generator.choices(WORDS, k=generator.randint(5, 40)))
        pairs.append(Pair(question, " ".join(generator.choices(WORDS, k=answer_words))))
    return pairs


def pair_of_tokens(detector: ClassifierDetector, tokens: int, seed: int = 1) -> Pair:
    """A pair whose (single) window is about ``tokens`` long."""
    generator = random.Random(seed)
    question = " ".join(generator.choices(WORDS, k=15))
    words: list[str] = []
    while True:
        words.append(generator.choice(WORDS))
        pair = Pair(question, " ".join(words))
        (window,) = detector.encoder.windows([pair])
        if len(window.input_ids) >= tokens:
            return pair


@dataclass
class Loaded:
    protector: Protector
    detector: ClassifierDetector
    label: str


def from_config(options: argparse.Namespace) -> Loaded:
    """A preset or YAML config, with the command line's device, dtype, quantisation and batch size."""
    base = ProtectorConfig.from_yaml(options.config) if options.config else ProtectorConfig.from_preset(options.preset)
    data = base.model_dump(mode="json")
    model = data["detector"]["model"]
    model.update(device=options.device, dtype=options.dtype, quantize=options.quantize)
    data["detector"]["batch_size"] = options.batch_size
    protector = Protector.from_config(ProtectorConfig.from_dict(data)).load()
    detector = protector.detector
    assert isinstance(detector, ClassifierDetector)
    return Loaded(protector, detector, f"config={options.config}" if options.config else f"preset={options.preset}")


def from_shape(options: argparse.Namespace) -> Loaded:
    """A random-weight model of a named architecture, built on the device in the chosen dtype."""
    model_class, make_config, template = SHAPES[options.shape]
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = make_config()
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its dtype: a 7B model in float32 would not fit where bf16 does
    try:
        with torch.device(device):
            model = model_class(config).eval()
    finally:
        torch.set_default_dtype(previous)
    if options.quantize == "int8":
        model = quantize_int8(model)
    detector = ClassifierDetector(
        model, tokenizer, template=template, max_length=options.max_length, batch_size=options.batch_size
    )
    label = f"shape={options.shape} (RANDOM WEIGHTS: speed only, scores meaningless)"
    return Loaded(Protector(detector, threshold=0.5), detector, label)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def current_rss_mib() -> float | None:
    """This process's resident memory now (Linux), in MiB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / 2**20


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Seconds of wall time and of this process's CPU time that ``run`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def median(samples: list[tuple[float, float]], which: int) -> float:
    return percentile([sample[which] for sample in samples], 0.5)


def spread(samples: list[tuple[float, float]]) -> str:
    """p50 and p99 of wall times, and p50 of CPU time, in milliseconds."""
    walls = [1000 * sample[0] for sample in samples]
    return (
        f"p50 {percentile(walls, 0.5):.2f} ms  p99 {percentile(walls, 0.99):.2f} ms  "
        f"(CPU p50 {1000 * median(samples, 1):.2f} ms)"
    )


def main() -> None:
    from bench_guard import GUARD_SHAPES
    from bench_guard import add_options as add_guard_options
    from bench_guard import run as run_guard

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="default")
    source.add_argument("--config", type=Path)
    source.add_argument("--shape", choices=sorted(SHAPES) + sorted(GUARD_SHAPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--quantize", default="none", choices=["none", "int8"])
    parser.add_argument("--pairs", type=int, help="default 256 (a guard shape: 16)")
    parser.add_argument("--batch-size", type=int, help="default 32 (a guard shape: 8)")
    parser.add_argument("--max-length", type=int, default=512, help="for --shape (configs carry their own)")
    parser.add_argument("--single-pairs", type=int, help="pairs for (b), one call each (default: all)")
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--repeats", type=int, help="default 3 (a guard shape: 2)")
    parser.add_argument("--prefetch", type=int, help="batches built ahead by a thread (default: by device)")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table of (b)'s calls")
    parser.add_argument(
        "--vs-float32", action="store_true", help="also time the same model in float32, in the same rounds"
    )
    add_guard_options(parser)
    options = parser.parse_args()
    guard = options.shape in GUARD_SHAPES
    for name, classifier_default, guard_default in (("pairs", 256, 16), ("batch_size", 32, 8), ("repeats", 3, 2)):
        if getattr(options, name) is None:
            setattr(options, name, guard_default if guard else classifier_default)
    if guard:
        run_guard(options)
        return

    build = from_shape if options.shape else from_config
    loaded = build(options)
    loaded_rss = current_rss_mib()
    as_float32 = argparse.Namespace(**{**vars(options), "dtype": "float32", "quantize": "none"})
    baseline = build(as_float32) if options.vs_float32 else None
    protector, detector = loaded.protector, loaded.detector
    if options.prefetch is not None:
        detector.prefetch_batches = options.prefetch
    device = detector.device
    pairs = mixed_pairs(options.pairs)
    single = pairs[: options.single_pairs or len(pairs)]
    long_pair = pair_of_tokens(detector, 200)

    batches = [batch.to(device) for batch in detector._batches(pairs, pin=device.type == "cuda")]
    windows = sum(batch.rows for batch in batches)
    tokens = sum(int(batch.features["attention_mask"].sum()) for batch in batches)

    def bare_forward() -> None:
        with torch.inference_mode():
            for batch in batches:
                detector.model(**batch.features)
        synchronize(device)

    latencies: list[tuple[float, float]] = []

    def one_at_a_time() -> None:
        latencies.clear()
        for pair in single:
            latencies.append(timed(lambda pair=pair: protector.check([pair])))

    protector.check(pairs[: options.batch_size])  # warm-up: kernels, allocator, caches
    protector.check([long_pair])
    bare_forward()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    runs: list[tuple[str, Callable[[], object]]] = [
        ("a", lambda: protector.check(pairs)),
        ("c", bare_forward),
        ("b", one_at_a_time),
    ]
    if baseline is not None:
        baseline.protector.check(pairs[: options.batch_size])
        runs.append(("f", lambda: baseline.protector.check(pairs)))
    wall = dict.fromkeys(("a", "b", "c", "f"), float("inf"))
    cpu = dict(wall)
    best_latencies: list[tuple[float, float]] = []
    for _ in range(options.repeats):  # in turn, so that outside load falls on all of them alike
        for key, run in runs:
            elapsed, used = timed(run)
            cpu[key] = min(cpu[key], used)
            if elapsed < wall[key]:
                wall[key] = elapsed
                if key == "b":
                    best_latencies = list(latencies)
    fixed: list[tuple[float, float]] = []
    fixed_baseline: list[tuple[float, float]] = []
    for _ in range(options.latency_runs):
        fixed.append(timed(lambda: protector.check([long_pair])))
        if baseline is not None:
            fixed_baseline.append(timed(lambda: baseline.protector.check([long_pair])))

    (long_window,) = detector.encoder.windows([long_pair])
    parameters = next(detector.model.parameters())
    print(loaded.label)
    print(
        f"device={device}{f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else ''} "
        f"dtype={parameters.dtype} quantize={options.quantize} "
        f"attention={getattr(detector.model.config, '_attn_implementation', '?')} threads={torch.get_num_threads()} "
        f"prefetch={detector._prefetch_depth(device)} torch={torch.__version__}"
    )
    print(
        f"pairs={len(pairs)} windows={windows} mean_tokens={tokens / windows:.0f} batch_size={options.batch_size} "
        f"repeats={options.repeats} (best of); CPU time is this process's, all threads (less load-sensitive)"
    )
    counts = {"a": len(pairs), "b": len(single), "c": len(pairs), "f": len(pairs)}
    rows = [
        ("a", "(a) check, batched"),
        ("b", "(b) check, one pair at a time"),
        ("c", "(c) bare forward, same batches"),
    ]
    print(f"{'':34}{'pairs/s':>10}{'pairs/CPU-s':>13}")
    for key, name in rows:
        print(f"{name:34}{counts[key] / wall[key]:10.2f}{counts[key] / cpu[key]:13.2f}")
    print(
        f"(a)/(c) = {wall['c'] / wall['a']:.3f} by wall time, {cpu['c'] / cpu['a']:.3f} by CPU time;  "
        f"(a)/(b) = {(len(pairs) / wall['a']) / (len(single) / wall['b']):.2f}"
    )
    print(f"latency, one {len(long_window.input_ids)}-token pair ({options.latency_runs} runs): {spread(fixed)}")
    print(f"latency, pairs of (b): {spread(best_latencies)}")
    if baseline is not None:
        print(
            f"float32, same rounds: (a) {len(pairs) / wall['f']:.2f} pairs/s; this one is {wall['f'] / wall['a']:.2f}x "
            f"by wall time, {cpu['f'] / cpu['a']:.2f}x by CPU time; one pair: {spread(fixed_baseline)}; this one "
            f"is {median(fixed_baseline, 0) / median(fixed, 0):.2f}x by wall, "
            f"{median(fixed_baseline, 1) / median(fixed, 1):.2f}x by CPU (host RSS below holds both models)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after_load = f", {loaded_rss:.0f} MiB once loaded" if loaded_rss else ""
    print(f"host RSS: peak {peak:.0f} MiB (loading included){after_load}")
    if device.type == "cuda":
        allocated = torch.cuda.max_memory_allocated(device) / 2**20
        reserved = torch.cuda.max_memory_reserved(device) / 2**20
        print(f"peak device memory: {allocated:.0f} MiB allocated, {reserved:.0f} MiB reserved")
    if options.profile:
        profile_single_pairs(protector, single[:20], device)
    sys.stdout.flush()


def profile_single_pairs(protector: Protector, pairs: list[Pair], device: torch.device) -> None:
    """Where one-pair calls spend their time: host ops, and device kernels on CUDA."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        for pair in pairs:
            with torch.profiler.record_function("check([pair])"):
                protector.check([pair])
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"profile of {len(pairs)} one-pair calls, by {sort}:")
    print(profiler.key_averages().table(sort_by=sort, row_limit=25))


if __name__ == "__main__":
    main()
