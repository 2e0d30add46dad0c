"""What differs between guard LMs, behind one small base class: the prompt a format renders for a response check,
the two vocabulary tokens its verdict is read from, and how it names categories of harm.

Formats are plain text: no tokenizer, no torch. :mod:`.detector` turns them into model inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class LeadLine:
    """A line the model writes before its verdict (WildGuard's first two): its opening text, then one of two
    labels, chosen greedily (the more likely of the two vocabulary tokens), written back as text."""

    header: str
    tokens: tuple[str, str]
    texts: tuple[str, str]
    separator: str = "\n"


@dataclass(frozen=True)
class TemplateProbe:
    """How to ask a tokenizer's own chat template for this format's prompt (to compare with :meth:`render`)."""

    messages: list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)


class GuardFormat:
    """A guard LM's prompt format for checking a response. Subclasses set the class attributes and :meth:`render`.

    The score is P(``unsafe_token``) from the softmax over ``unsafe_token`` and ``safe_token`` (vocabulary entries)
    at the first answer position: right after the prompt, or after ``lead`` lines and ``verdict_header``.
    """

    name: ClassVar[str]
    unsafe_token: ClassVar[str]
    safe_token: ClassVar[str]
    markup: ClassVar[tuple[str, ...]] = ()
    """Special tokens of the prompt, each one token of the model's tokenizer (a check that model and format match)."""
    lead: ClassVar[tuple[LeadLine, ...]] = ()
    verdict_header: ClassVar[str] = ""
    image_text: ClassVar[bool] = False
    """Loaded as an image-text-to-text model (its checkpoint holds a vision tower too)."""
    names_categories: ClassVar[bool] = False
    """Its answer's second line lists category codes (Llama Guard), read by a greedy continuation."""

    @property
    def policies(self) -> tuple[str, ...]:
        """Policies asked one prompt each (ShieldGemma); empty: one prompt per pair."""
        return ()

    def render(self, question: str, answer: str, policy: str | None = None) -> str:
        """The whole prompt, special tokens included, ending where the model's answer starts."""
        raise NotImplementedError

    def categories(self, continuation: str) -> dict[str, bool]:
        """The categories named in the text the model wrote after ``unsafe_token`` (Llama Guard); else none."""
        return {}

    def template_probe(self, question: str, answer: str) -> TemplateProbe | None:
        """The messages (and template options) for which the model's own chat template renders this prompt."""
        return None


def coded_categories(continuation: str, names: Mapping[str, str]) -> dict[str, bool]:
    """Llama Guard's second line (``S1,S10``): each code named, as ``names`` labels it (an unknown code as itself)."""
    line = next((line for line in continuation.splitlines() if line.strip()), "")
    return {names.get(code, code): True for code in dict.fromkeys(re.findall(r"\bS\d+\b", line))}
