"""Every error the protector raises on purpose derives from :class:`ProtectorError`."""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protector_models.results import Result


class ProtectorError(Exception):
    """Base class of the errors raised by mllm-protector."""


class ConfigError(ProtectorError, ValueError):
    """A configuration is invalid: the message names the field path and what it accepts."""


class ModelLoadError(ProtectorError):
    """A model, tokenizer or adapter could not be found, verified or loaded."""


class InvalidInputError(ProtectorError, ValueError):
    """A (question, answer) pair or an input record is malformed."""


class ModelRuntimeError(ProtectorError):
    """A model failed while scoring or rewriting (out of memory, device error, ...)."""


class HarmfulContentError(ProtectorError):
    """Raised by ``action="raise"`` when an answer is flagged; carries every result of the call."""

    def __init__(self, results: list[Result]) -> None:
        self.results = results
        flagged = [i for i, result in enumerate(results) if result.flagged]
        super().__init__(
            f"{len(flagged)} of {len(results)} answers flagged as harmful (positions {flagged}); "
            "the unchanged results are in `.results`"
        )

    def __reduce__(self) -> tuple[type[HarmfulContentError], tuple[list[Result]]]:
        """Pickle by results (the default would rebuild from the message and fail), e.g. across processes."""
        return type(self), (self.results,)


class _ShortRepr(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother = 3, 160, 160

    def repr_int(self, x: int, level: int) -> str:
        digits = int(x.bit_length() * 0.30103) + 1  # repr() of a huge int is slow, and refused past 4,300 digits
        return repr(x) if digits < 60 else f"<an integer of about {digits} digits>"


_REPR = _ShortRepr()


def shown(value: object, limit: int = 200) -> str:
    """``repr(value)`` for an error message: bounded in length (about ``limit`` characters) and in the work it
    takes, however large or deeply shared the value is."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
