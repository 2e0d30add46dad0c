"""Every error the protector raises on purpose derives from :class:`ProtectorError`."""

from __future__ import annotations

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
