"""Forward passes over padded batches on a device: moving them there (from pinned memory on CUDA), and halving a
batch that runs out of device memory until it fits. Shared by the classifier and the guard LM detectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from protector_models.errors import ModelRuntimeError


@dataclass(frozen=True)
class PaddedBatch:
    """Padded model inputs of some rows, and which row of the caller's each one is (``owners``)."""

    features: dict[str, torch.Tensor]
    owners: torch.Tensor

    @property
    def rows(self) -> int:
        return int(self.owners.shape[0])

    @property
    def width(self) -> int:
        return int(self.features["input_ids"].shape[1])

    def slice(self, start: int, stop: int) -> PaddedBatch:
        if start == 0 and stop >= self.rows:
            return self
        return PaddedBatch({k: v[start:stop] for k, v in self.features.items()}, self.owners[start:stop])

    def pinned(self) -> PaddedBatch:
        """In page-locked memory, so copies to a CUDA device run asynchronously."""
        return PaddedBatch({k: v.pin_memory() for k, v in self.features.items()}, self.owners.pin_memory())

    def to(self, device: torch.device) -> PaddedBatch:
        if device.type == "cpu":
            return self
        move = partial(torch.Tensor.to, device=device, non_blocking=device.type == "cuda")  # from pinned memory
        return PaddedBatch({k: move(v) for k, v in self.features.items()}, move(self.owners))


OUT_OF_MEMORY: tuple[type[BaseException], ...] = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


def run_in_parts(
    batch: PaddedBatch,
    device: torch.device,
    limit: int | None,
    run: Callable[[PaddedBatch], None],
    *,
    what: str = "the detector",
    hint: str = "use a smaller max_length, a lower-precision dtype, or a device with more memory",
) -> int | None:
    """``run`` on the rows of ``batch`` moved to ``device``, at most ``limit`` rows at a time (None: all at once).

    A part that runs out of device memory is halved and retried, down to one row; the smaller size is returned, for
    the caller's later batches. One row that does not fit is a :class:`ModelRuntimeError` naming ``what``.
    """
    rows = batch.rows
    step = rows if limit is None else min(rows, limit)
    start = 0
    while start < rows:
        part = batch.slice(start, start + step)
        try:
            run(part.to(device))
        except OUT_OF_MEMORY as error:
            if step == 1:
                raise ModelRuntimeError(
                    f"{what} ran out of device memory on a single input of {part.width} tokens; {hint}"
                ) from error
            failed = True
        else:
            failed = False
        if failed:  # outside `except`: the traceback and the activations it holds are gone
            step = limit = step // 2
            release_cached_memory(device)
            continue
        start += step
    return limit


def release_cached_memory(device: torch.device) -> None:
    """After an out-of-memory error: give cached blocks back, so the smaller retry can use them."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
