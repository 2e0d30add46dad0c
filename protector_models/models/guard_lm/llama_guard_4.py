"""Llama Guard 4 (12B): Llama Guard 3's response check with Llama 4's header tokens and the wording "according to
our safety policy" (not checked against a copy of its own chat template: none was found; loading compares the
model's template with this prompt); the same categories, ``safe``/``unsafe`` first token and code line.

The checkpoint is multimodal (loaded as image-text-to-text); only text is passed: the question's images stay listed
as unchecked media by the adapters, as with every other detector."""

from __future__ import annotations

from typing import ClassVar

from protector_models.models.guard_lm.format import TemplateProbe
from protector_models.models.guard_lm.llama_guard_3 import LlamaGuard3


class LlamaGuard4(LlamaGuard3):
    """Llama Guard 4, text only."""

    name: ClassVar[str] = "llama-guard-4"
    markup: ClassVar[tuple[str, ...]] = ("<|begin_of_text|>", "<|header_start|>", "<|header_end|>", "<|eot|>")
    image_text: ClassVar[bool] = True
    user_header: ClassVar[str] = "<|begin_of_text|><|header_start|>user<|header_end|>\n\n"
    assistant_header: ClassVar[str] = "<|eot|><|header_start|>assistant<|header_end|>\n\n"
    according: ClassVar[str] = "to our"

    def template_probe(self, question: str, answer: str) -> TemplateProbe:
        probe = super().template_probe(question, answer)
        for message in probe.messages:  # its template reads typed content parts
            message["content"] = [{"type": "text", "text": message["content"]}]
        return probe
