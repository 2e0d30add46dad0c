"""The adapter's own settings, and the YAML file that holds them next to the core's config.

One file serves every framework::

    protector:          # the core schema (docs/configuration.md); Protector.from_yaml reads this section
      preset: default
      # threshold: 0.7096   # the preset's; set it to override
    langchain:          # optional: this adapter's keys (LangChainSettings)
      answer_key: answer
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protector_models import ConfigError, ProtectorConfig
from protector_models.config.schema import validate_section
from protector_models.config.yaml_io import dump_config_yaml, read_config_yaml

SECTION = "langchain"


class LangChainSettings(BaseModel):
    """How the LangChain adapter reads inputs and reports verdicts (the ``langchain:`` YAML section)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    question_key: str = Field("question", min_length=1, description="Dict input: the key holding the question.")
    answer_key: str = Field("answer", min_length=1, description="Dict input: the key holding the answer.")
    metadata_key: str = Field("mllm_protector", min_length=1, description="Key of the verdict in response_metadata.")
    event_name: str = Field("mllm_protector", min_length=1, description="Name of the custom event per verdict.")
    check_tool_calls: bool = Field(
        False,
        description="Also judge tool calls (name + JSON arguments); off: text-less tool calls pass as is.",
    )
    verdict_key: str | None = Field(
        None,
        min_length=1,
        description="str and dict input: add the verdict under this key (a str comes back as a dict); None: don't.",
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> Self:
        distinct_keys(self.question_key, self.answer_key, self.verdict_key)
        return self

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "langchain settings") -> Self:
        """Validate a mapping; unknown keys are named with the allowed ones."""
        return validate_section(cls, data, source)


def distinct_keys(question_key: str, answer_key: str, verdict_key: str | None) -> None:
    """Refuse keys that would overwrite one another."""
    keys = [question_key, answer_key, *([verdict_key] if verdict_key else [])]
    if len(set(keys)) < len(keys):
        raise ValueError(
            f"question_key, answer_key and verdict_key must differ, got {keys}: one would overwrite another"
        )


def read_yaml(path: str | Path) -> tuple[ProtectorConfig, LangChainSettings]:
    """The core config and the adapter settings from one YAML file, read as strictly as the core's."""
    path = Path(path)
    data = read_config_yaml(path)
    if isinstance(data, Mapping) and SECTION in data and not isinstance(data.get("protector"), Mapping):
        raise ConfigError(
            f"{path}: a file with a '{SECTION}:' section keeps the core keys under 'protector:' (see docs/langchain.md)"
        )
    core = ProtectorConfig.from_yaml(path)
    if not isinstance(data, Mapping) or SECTION not in data:
        return core, LangChainSettings()
    return core, LangChainSettings.from_dict(data[SECTION] or {}, source=f"'{SECTION}:' section of {path}")


def to_yaml(config: ProtectorConfig, settings: LangChainSettings) -> str:
    """The YAML that :func:`read_yaml` reads back to an equal config and equal settings."""
    document: dict[str, Any] = {"protector": config.model_dump(mode="json")}
    changed = settings.model_dump(mode="json", exclude_defaults=True)
    if changed:
        document[SECTION] = changed
    return dump_config_yaml(document)
