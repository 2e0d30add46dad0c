"""What the protector returns: verdicts from ``check`` and results from ``protect``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from protector_models.interfaces import Categories

ActionTaken = Literal["none", "annotate", "refuse", "detoxify", "block", "unchecked"]
"""``none``: not flagged; ``annotate``: flagged, passed on (action ``pass``); ``refuse``/``detoxify``: replaced;
``block``: a model failed and ``on_error=block`` withheld the answer; ``unchecked``: a model failed and
``on_error=pass`` let the answer through, marked as not checked."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The detector's judgement of one pair. ``harm_score`` is P(harmful), None when it could not be scored.

    A pair the detector could not score has ``checked=False`` and counts as ``flagged`` under
    ``on_error="block"`` (not under ``"pass"``).
    """

    harm_score: float | None
    flagged: bool
    checked: bool = True
    error: str | None = None
    categories: Categories = field(default_factory=dict, hash=False)
    """Categories of harm the detector named (a guard LM's); empty for a classifier."""
    decided_by: str | None = None
    """Which detector of a cascade decided (``first`` or ``second``); None for a single detector."""


@dataclass(frozen=True, slots=True)
class Result:
    """One protected answer: the text to show (``output``) and how it came about."""

    question: str
    original: str
    output: str
    harm_score: float | None
    flagged: bool
    action: ActionTaken
    checked: bool = True
    error: str | None = None
    categories: Categories = field(default_factory=dict, hash=False)
    """As :attr:`Verdict.categories`."""
    decided_by: str | None = None
    """As :attr:`Verdict.decided_by`."""
    detect_ms: float = field(default=0.0, compare=False)
    """Detector time per pair (the batch's time divided by its size); not part of equality."""
    rewrite_ms: float = field(default=0.0, compare=False)
    """Rewriter time per rewritten pair; 0 for pairs that were not rewritten; not part of equality."""

    @property
    def changed(self) -> bool:
        """Whether ``output`` differs from the original answer."""
        return self.output != self.original

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)
