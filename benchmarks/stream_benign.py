"""How many more benign answers verified release stops than ``check`` flags (its early windows' cost).

python benchmarks/stream_benign.py [FILE] [--preset default | --config protector.yaml] [--first-window-tokens 64]
    [--chunkings 1] [--seed 0] [--limit N]

FILE defaults to ``../shared/data/dev/benign_answers.jsonl`` (901 benign answers). Each answer is checked whole,
then streamed ``--chunkings`` times into ``Protector.stream``, cut into random pieces of 1 to 40 characters. It
prints how many answers ``check`` flags, how many streams were stopped or flagged, and the difference as a share
of the answers (the issue's bound: 0.5%). An answer ``check`` flags that a stream passed to its end would break
the guarantee that an answer streamed to its end gets ``check``'s verdict: those are counted too (expected: 0).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from protector_models import Protector, ProtectorError
from protector_models.config.schema import ProtectorConfig
from protector_models.data.labelled import read_labelled

DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dev" / "benign_answers.jsonl"


def pieces(text: str, generator: random.Random) -> list[str]:
    """``text`` cut into pieces of 1 to 40 characters."""
    cuts, at = [], 0
    while at < len(text):
        step = generator.randint(1, 40)
        cuts.append(text[at : at + step])
        at += step
    return cuts


def streamed_flagged(protector: Protector, question: str, chunks: list[str]) -> tuple[bool, bool]:
    """Whether a verified stream of ``chunks`` ended flagged, and whether it was stopped before the end."""
    stream = protector.stream(question, action="refuse")
    for chunk in chunks:
        stream.feed(chunk)
        if stream.done:
            break
    else:
        stream.finish()
    assert stream.outcome is not None
    return stream.outcome.result.flagged, stream.outcome.stopped


def load(options: argparse.Namespace) -> Protector:
    base = ProtectorConfig.from_yaml(options.config) if options.config else ProtectorConfig.from_preset(options.preset)
    data = base.model_dump(mode="json")
    data["streaming"] = {"release": "verified", "first_window_tokens": options.first_window_tokens}
    return Protector.from_config(ProtectorConfig.from_dict(data)).load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, nargs="?", default=DEV)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--first-window-tokens", type=int, default=64)
    parser.add_argument("--chunkings", type=int, default=1, help="random chunkings streamed per answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="only the first N answers (a quick run)")
    options = parser.parse_args()
    examples = read_labelled(options.file)[: options.limit]
    if not examples or any(example.harmful for example in examples):
        sys.exit(f"error: {options.file} must hold benign answers only (harmful: false)")
    protector = load(options)
    generator = random.Random(options.seed)
    started = time.perf_counter()
    try:
        verdicts = protector.check([example.pair for example in examples])
        check_flagged = [verdict.flagged for verdict in verdicts]
        streams = stopped = extra = missed = 0
        for example, flagged in zip(examples, check_flagged, strict=True):
            for _ in range(options.chunkings):
                stream_flagged, was_stopped = streamed_flagged(
                    protector, example.question, pieces(example.answer, generator)
                )
                streams += 1
                stopped += was_stopped
                extra += stream_flagged and not flagged
                missed += flagged and not stream_flagged
    except ProtectorError as error:
        sys.exit(f"error: {error}")
    count, flagged_total = len(examples), sum(check_flagged)
    flagged_streams = sum(check_flagged) * options.chunkings + extra - missed
    print(f"{options.file}: {count} benign answers, {options.chunkings} random chunking(s) each (seed {options.seed})")
    print(f"first window {options.first_window_tokens} tokens; {time.perf_counter() - started:.0f} s\n")
    print("| | answers or streams | share |")
    print("|---|---:|---:|")
    print(f"| `check` flags | {flagged_total} of {count} | {100 * flagged_total / count:.2f}% |")
    print(f"| streams flagged | {flagged_streams} of {streams} | {100 * flagged_streams / streams:.2f}% |")
    print(f"| streams stopped before the end | {stopped} of {streams} | {100 * stopped / streams:.2f}% |")
    print(f"| **streams flagged that `check` passes** | {extra} of {streams} | **{100 * extra / streams:.2f}%** |")
    print(f"| streams passed that `check` flags (expected 0) | {missed} of {streams} | {100 * missed / streams:.2f}% |")


if __name__ == "__main__":
    main()
