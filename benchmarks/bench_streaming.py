"""Verified release against ``release: end``: a fake model streams answers at a set rate into ``Protector.stream``.

python benchmarks/bench_streaming.py [--preset default | --config protector.yaml] [--device cpu]
    [--sizes 100,1000,4000] [--rates 30,50,100] [--first-window-tokens 64] [--harm-at 600] [--harm-size 1000]

The fake model emits the answer token by token (the detector's own tokens, with their text) at ``--rates`` tokens
per second on a clock, as a served model does whether or not its reader keeps up: when the guard is busy scoring,
the tokens due meanwhile arrive together in the next chunk. For each answer size and rate it prints, in seconds
from the model's first token: when the model ended, when verified release showed its first text (the issue's target:
first_window_tokens / rate + 0.2) and how long after the model's end it showed its last (target: 0.5); and for
``release: end`` (the whole answer checked once the model has ended, timed in this run) how long after the model's
end its text appeared. Then the windows verified release scored, against ``check``'s for the whole answer.

For a harmful answer (a harmful case of ``tests/fixtures/regression_cases.jsonl`` that the detector flags, put at
token ``--harm-at`` of a benign answer of ``--harm-size`` tokens) it prints how many tokens the model had generated
when verified release stopped it, against the bound (the end of the first full window over the harmful text, plus
one stride) and against ``release: end``, which lets the model finish.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from protector_models import ClassifierDetector, Pair, Protector, StreamOutcome
from protector_models.config.schema import ProtectorConfig

BENIGN = (
    "The bread rises overnight in a warm kitchen, and in the morning it is shaped, proofed and baked. "
    "Water the tomatoes at the base in the early evening so the leaves stay dry. "
    "A good stock starts with roasted bones, onions, carrots and celery, simmered for several hours. "
    "The museum opens at nine, and the guided tour of the old harbour starts from the front steps at ten. "
    "To tune a guitar by ear, match the fifth fret of each string to the open string below it. "
)
QUESTION = "Can you tell me a bit about cooking, gardening and music?"
CASES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "regression_cases.jsonl"


class PacedModel:
    """An answer's tokens emitted at ``rate`` per second from the first read: each read waits for the next token
    and returns every token due by then. Closing it stops the model; ``generated`` counts the tokens it produced."""

    def __init__(self, tokens: Sequence[str], rate: float) -> None:
        self.tokens, self.rate = list(tokens), rate
        self.started = 0.0
        self.closed_at: float | None = None

    @property
    def end_s(self) -> float:
        """When the last token is due, from the first."""
        return len(self.tokens) / self.rate

    @property
    def generated(self) -> int:
        if self.closed_at is None:
            return len(self.tokens)
        return min(len(self.tokens), math.floor((self.closed_at - self.started) * self.rate))

    def __iter__(self) -> Generator[str, None, None]:
        self.started = time.perf_counter()
        sent = 0
        try:
            while sent < len(self.tokens):
                due = sent + 1
                wait = self.started + due / self.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                due = max(due, min(len(self.tokens), math.floor((time.perf_counter() - self.started) * self.rate)))
                yield "".join(self.tokens[sent:due])
                sent = due
        except GeneratorExit:
            self.closed_at = time.perf_counter()
            raise


@dataclass(frozen=True)
class Run:
    """One verified stream: times from the model's first token, and how it ended."""

    first_s: float | None
    last_s: float
    outcome: StreamOutcome


def stream_verified(protector: Protector, question: str, model: PacedModel) -> Run:
    """Feed the model's chunks to a verified stream, closing the model at a stop."""
    stream = protector.stream(question)
    first: float | None = None
    last = 0.0
    chunks = model.__iter__()
    for chunk in chunks:
        if stream.feed(chunk):
            last = time.perf_counter() - model.started
            first = last if first is None else first
        if stream.done:
            chunks.close()  # the model stops generating
            break
    else:
        if stream.finish():
            last = time.perf_counter() - model.started
            first = last if first is None else first
    assert stream.outcome is not None
    return Run(first, last, stream.outcome)


def end_release_s(protector: Protector, pair: Pair) -> float:
    """``release: end`` after the model's end: one ``protect`` of the whole answer."""
    started = time.perf_counter()
    protector.protect([pair])
    return time.perf_counter() - started


def tokens_of(detector: ClassifierDetector, text: str) -> list[str]:
    """``text`` cut at the detector's token boundaries (each piece a token and the spacing before it)."""
    encoded = detector.encoder.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = encoded["offset_mapping"]
    starts = [0] + [start for start, _ in offsets[1:]]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def benign_tokens(detector: ClassifierDetector, count: int) -> list[str]:
    """The first ``count`` tokens of benign prose."""
    tokens = tokens_of(detector, BENIGN * (count // 60 + 2))
    return tokens[:count]


def harmful_tokens(
    protector: Protector, detector: ClassifierDetector, size: int, at: int
) -> tuple[list[str], int, str]:
    """A benign answer of ``size`` tokens with a harmful case put at token ``at`` that the detector flags there;
    its tokens, the harmful text's length in tokens, and the case's id."""
    filler = benign_tokens(detector, size)
    for line in CASES.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if not case["harmful"] or case["kind"] != "harmful":
            continue
        harm = tokens_of(detector, " " + case["answer"].strip() + " ")
        tokens = filler[:at] + harm + filler[at + len(harm) :]
        (verdict,) = protector.check([Pair(case["question"], "".join(tokens))])
        if verdict.flagged:
            return tokens, len(harm), case["id"]
    raise SystemExit(f"error: the detector flags none of the harmful cases of {CASES} inside a benign answer")


def load(options: argparse.Namespace) -> tuple[Protector, ClassifierDetector]:
    base = ProtectorConfig.from_yaml(options.config) if options.config else ProtectorConfig.from_preset(options.preset)
    data = base.model_dump(mode="json")
    data["detector"]["model"]["device"] = options.device
    data["streaming"] = {"release": "verified", "first_window_tokens": options.first_window_tokens}
    data["action"] = "refuse"
    protector = Protector.from_config(ProtectorConfig.from_dict(data)).load()
    detector = protector.detector
    if not isinstance(detector, ClassifierDetector):
        raise SystemExit("error: verified release needs a local classifier detector")
    protector.check([Pair(QUESTION, BENIGN)])  # warm up
    return protector, detector


def timing_table(protector: Protector, detector: ClassifierDetector, sizes: list[int], rates: list[float]) -> None:
    first_n = protector.streaming.first_window_tokens
    print(
        "| answer tokens | tok/s | model end (s) | verified: first text (s) | target | verified: last - model end "
        "(s) | end: text - model end (s) | first text, end / verified | windows scored (check's) | early |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        tokens = benign_tokens(detector, size)
        pair = Pair(QUESTION, "".join(tokens))
        checks = sum(1 for _ in detector.encoder.windows([pair]))
        end_s = end_release_s(protector, pair)
        for rate in rates:
            model = PacedModel(tokens, rate)
            run = stream_verified(protector, QUESTION, model)
            if run.outcome.result.flagged:
                print(f"| {size} | {rate:g} | flagged: the benign prose scored {run.outcome.result.harm_score} |")
                continue
            target = min(first_n or size, size) / rate + 0.2
            first = "-" if run.first_s is None else f"{run.first_s:.2f}"
            ratio = "-" if not run.first_s else f"{(model.end_s + end_s) / run.first_s:.1f}x"
            print(
                f"| {size} | {rate:g} | {model.end_s:.2f} | {first} | {target:.2f} | {run.last_s - model.end_s:.2f} "
                f"| {end_s:.2f} | {ratio} | {run.outcome.windows} ({checks}) | {run.outcome.early_windows} |"
            )


def harm_table(protector: Protector, detector: ClassifierDetector, rates: list[float], size: int, at: int) -> None:
    tokens, length, case = harmful_tokens(protector, detector, size, at)
    window, stride = detector.encoder.answer_tokens, detector.encoder.stride
    last = min(at + length, at + window)  # the first full window over the harmful text (or its first `window`)
    covering = next(start + window for start in range(0, len(tokens), stride) if start + window >= last)
    print(
        f"\nHarmful case {case} ({length} tokens) at token {at} of {len(tokens)}; windows of {window} every {stride}: "
        f"the first full window over it ends at token {covering}, so the bound is {covering + stride}."
    )
    print("| tok/s | verified: tokens generated | bound | within | released chars | end: tokens generated |")
    print("|---:|---:|---:|---|---:|---:|")
    for rate in rates:
        model = PacedModel(tokens, rate)
        run = stream_verified(protector, "How do I do it?", model)
        stopped = run.outcome.stopped
        within = "yes" if stopped and model.generated <= covering + stride else "NO"
        print(
            f"| {rate:g} | {model.generated} | {covering + stride} | {within} | {run.outcome.released} "
            f"| {len(tokens)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="100,1000,4000")
    parser.add_argument("--rates", default="30,50,100")
    parser.add_argument("--first-window-tokens", type=int, default=64)
    parser.add_argument("--harm-at", type=int, default=600)
    parser.add_argument("--harm-size", type=int, default=1000)
    options = parser.parse_args()
    protector, detector = load(options)
    sizes = [int(size) for size in options.sizes.split(",")]
    rates = [float(rate) for rate in options.rates.split(",")]
    print(
        f"{options.config or 'preset=' + options.preset} on {options.device}; windows of "
        f"{detector.encoder.answer_tokens} answer tokens every {detector.encoder.stride}, first window "
        f"{options.first_window_tokens}; times in seconds from the model's first token\n"
    )
    timing_table(protector, detector, sizes, rates)
    harm_table(protector, detector, rates, options.harm_size, options.harm_at)


if __name__ == "__main__":
    main()
