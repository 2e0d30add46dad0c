"""Guard LMs as detectors: one module per prompt format (Llama Guard 3 and 4, ShieldGemma, WildGuard, Granite
Guardian) behind :class:`~.format.GuardFormat`, and the detector that reads them (:mod:`.detector`, which loads
torch; importing this package does not)."""

from __future__ import annotations

from protector_models.config.schema import GuardLMConfig
from protector_models.models.guard_lm.format import GuardFormat
from protector_models.models.guard_lm.granite_guardian import GraniteGuardian
from protector_models.models.guard_lm.llama_guard_3 import LlamaGuard3
from protector_models.models.guard_lm.llama_guard_4 import LlamaGuard4
from protector_models.models.guard_lm.shieldgemma import ShieldGemma
from protector_models.models.guard_lm.wildguard import WildGuard


def guard_format(config: GuardLMConfig) -> GuardFormat:
    """The prompt format a config names, with its options (Llama Guard's excluded categories, ShieldGemma's
    policies)."""
    if config.format == "llama-guard-3":
        return LlamaGuard3(config.excluded_categories)
    if config.format == "llama-guard-4":
        return LlamaGuard4(config.excluded_categories)
    if config.format == "shieldgemma":
        return ShieldGemma(config.policies)
    if config.format == "wildguard":
        return WildGuard()
    return GraniteGuardian()


__all__ = ["GraniteGuardian", "GuardFormat", "LlamaGuard3", "LlamaGuard4", "ShieldGemma", "WildGuard", "guard_format"]
