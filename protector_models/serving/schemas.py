"""The service's JSON: requests (strict, unknown keys refused) and responses, field for field the core's."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protector_models.pairs import Pair
from protector_models.results import ActionTaken, Result, Verdict


def _encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate such as \\ud800)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class PairIn(_Request):
    """One (question, answer) pair; the question may be left out."""

    question: Text = ""
    answer: Text


class CheckRequest(_Request):
    """Pairs to score; ``threshold`` overrides the server's for this request only."""

    pairs: list[PairIn] = Field(min_length=1)
    threshold: float | None = Field(None, ge=0.0, le=1.0)

    def core_pairs(self) -> list[Pair]:
        """The pairs as the core takes them."""
        return [Pair(pair.question, pair.answer) for pair in self.pairs]


class ProtectRequest(CheckRequest):
    """Pairs to score and act on with the server's action."""


class VerdictOut(BaseModel):
    """One pair's verdict, as :class:`~protector_models.Verdict`: ``harm_score`` is None when it was not scored;
    ``categories`` (a guard LM's: name -> probability or flag) is empty for a classifier; ``decided_by`` names the
    detector of a cascade that decided."""

    harm_score: float | None
    flagged: bool
    checked: bool
    error: str | None
    categories: dict[str, bool | float] = Field(default_factory=dict)
    decided_by: str | None = None

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        return cls(
            harm_score=verdict.harm_score,
            flagged=verdict.flagged,
            checked=verdict.checked,
            error=verdict.error,
            categories=dict(verdict.categories),
            decided_by=verdict.decided_by,
        )


class CheckResponse(BaseModel):
    """The verdicts in request order, and the threshold they were compared with."""

    results: list[VerdictOut]
    threshold: float


class ResultOut(VerdictOut):
    """One pair's result, as ``mllm-protector scan`` writes it: ``output`` is the text to show."""

    action: ActionTaken
    output: str

    @classmethod
    def of_result(cls, result: Result) -> ResultOut:
        return cls(
            harm_score=result.harm_score,
            flagged=result.flagged,
            checked=result.checked,
            error=result.error,
            categories=dict(result.categories),
            decided_by=result.decided_by,
            action=result.action,
            output=result.output,
        )


class ProtectResponse(BaseModel):
    """The results in request order."""

    results: list[ResultOut]
    threshold: float


class Health(BaseModel):
    """``GET /healthz``: the model is loaded and requests are taken."""

    status: str
    detector: str
    batching: bool
