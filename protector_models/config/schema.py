"""Configuration: pydantic models, loadable from YAML, a dict or a preset name.

YAML is read safely and strictly (:mod:`protector_models.config.yaml_io`) and never names import paths: every model
is a :class:`ModelSpec` (data only), and every component is chosen by a ``kind`` from a closed list. Values are
never coerced: ``true`` is no number and ``'yes'`` no boolean.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from protector_models.config.presets import BUNDLED_IDS
from protector_models.config.yaml_io import dump_config_yaml, read_config_yaml
from protector_models.errors import ConfigError, shown

DType = Literal["auto", "float32", "bfloat16", "float16"]
Quantize = Literal["none", "int8"]
Action = Literal["pass", "refuse", "detoxify", "raise"]
OnError = Literal["raise", "block", "pass"]

ACTIONS: tuple[Action, ...] = ("pass", "refuse", "detoxify", "raise")

DEFAULT_REFUSAL = (
    "I'm sorry, but I can't help with that. The answer was withheld because it may contain harmful content."
)


class _Strict(BaseModel):
    """No unknown keys, no coercion (an int is still accepted for a float), no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _relative_file(name: str) -> str:
    parts = name.split("/")
    if "\\" in name or any(part == "" or part.startswith(".") for part in parts) or name.endswith((".yaml", ".yml")):
        raise ValueError("must be a relative path of a file to pin, like 'config.json' or '1_Pooling/config.json'")
    return name


def _one_line(text: str) -> str:
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ValueError("must be one line of printable text (it holds a control character such as NUL or newline)")
    return text


DEVICES = "auto, cpu, cuda, cuda:N (N a GPU index, e.g. cuda:1) or mps"


def check_device(value: str) -> str:
    """A device name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value):
        raise ValueError(f"must be one of {DEVICES}")
    return value


def _sha256(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError("must be a SHA-256 digest: 64 hex digits, as `mllm-protector hash DIR` prints")
    return text.lower()


def _env_var_name(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
    """The name of an environment variable; anything else may be the secret itself, so it is never shown."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", value):
        raise PydanticCustomError(
            _SECRET_ERROR,
            "must be the name of the environment variable that holds the key (letters, digits and _, not starting "
            "with a digit), not the key itself; what was given is not shown, since it may be the key",
        )
    name: str = handler(value)
    return name


_SECRET_ERROR = "env_var_name"
"""The error type of a value that may be a secret: error messages never show the value."""
EnvVarName = Annotated[str, WrapValidator(_env_var_name)]


# Paths and ids: one line of printable text (a NUL byte or a newline in a path is never intended).
_Name = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_one_line)]
_PinnedFile = Annotated[_Name, AfterValidator(_relative_file)]
_Sha256 = Annotated[str, AfterValidator(_sha256)]
_Pins = Annotated[dict[_PinnedFile, _Sha256], Field(min_length=1)]
Device = Annotated[str, AfterValidator(check_device)]


_LOADER_OPTIONS = {
    "trust_remote_code": "set `trust_remote_code` of the model spec",
    "revision": "set `revision` of the model spec",
    "dtype": "set `dtype` of the model spec",
    "torch_dtype": "set `dtype` of the model spec",
    "use_safetensors": "weights always load from safetensors",
    "gguf_file": "weights load from safetensors only",
    "weights_only": "weights load from safetensors only",
}
"""``from_pretrained`` options that the loader sets itself, refused in ``model_kwargs`` and ``tokenizer_kwargs``."""

_HUB_KERNEL_SWITCHES = ("use_kernels", "allow_all_kernels", "kernel_config")
"""``from_pretrained`` options that load compiled kernels from the Hugging Face hub (the ``kernels`` package)."""
_KERNEL_NAMES = ("attn_implementation", "experts_implementation")
"""``from_pretrained`` options whose value may name a hub kernel (``owner/repo``: kernels-community/flash-attn2)."""


def _hub_kernel_option(model_kwargs: Mapping[str, Any]) -> str | None:
    """The ``model_kwargs`` key that would fetch compiled code from the hub, if any."""
    for key, value in model_kwargs.items():
        if key in _HUB_KERNEL_SWITCHES and value not in (None, False):
            return key
        if key in _KERNEL_NAMES and isinstance(value, str) and "/" in value:
            return key
    return None


class ModelSpec(_Strict):
    """Where a model comes from and how to load it; the same shape for every model."""

    source: _Name = Field(description="Local directory, bundled model id, or Hugging Face hub id.")
    revision: _Name | None = Field(None, description="Hub revision (branch, tag or commit) of `source`.")
    adapter: _Name | None = Field(None, description="PEFT (LoRA) adapter: local directory or hub id.")
    adapter_revision: _Name | None = None
    sha256: _Pins | None = Field(
        None, description="SHA-256 of every file of `source` (relative path -> hex), as `mllm-protector hash` prints."
    )
    adapter_sha256: _Pins | None = Field(None, description="SHA-256 of every file of `adapter`, likewise.")
    require_pins: bool = Field(
        False, description="Refuse a local directory (`source` or `adapter`) without pins; on in `serve`."
    )
    device: Device = "auto"
    dtype: DType = "auto"
    max_length: int = Field(
        512, gt=8, le=131072, description="Longest input in tokens (a detector reads longer answers in windows)."
    )
    quantize: Quantize = Field(
        "none",
        description="int8: the backbone's linear layers in int8 with dynamic activation scales, on the CPU only "
        "(faster and smaller; scores shift a little, see docs/configuration.md).",
    )
    trust_remote_code: bool = False
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    tokenizer_kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model_kwargs", "tokenizer_kwargs")
    @classmethod
    def _no_loader_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in _LOADER_OPTIONS:
                raise ValueError(f"{shown(key)} is not allowed here: {_LOADER_OPTIONS[key]}")
        return value

    @model_validator(mode="after")
    def _hub_kernels_need_trust(self) -> Self:
        key = None if self.trust_remote_code else _hub_kernel_option(self.model_kwargs)
        if key is not None:
            raise ValueError(
                f"model_kwargs.{key}: {shown(self.model_kwargs[key])} loads a compiled kernel from the Hugging Face "
                "hub, code that runs unreviewed on this machine; drop it, or set trust_remote_code: true to allow it"
            )
        return self

    @model_validator(mode="after")
    def _adapter_pins_need_an_adapter(self) -> Self:
        if self.adapter_sha256 is not None and self.adapter is None:
            raise ValueError("`adapter_sha256` pins the files of `adapter`, but no `adapter` is set")
        return self

    @model_validator(mode="after")
    def _int8_runs_on_the_cpu(self) -> Self:
        if self.quantize == "int8" and self.device not in ("auto", "cpu"):
            raise ValueError(
                f"quantize: int8 runs on the CPU only, not on device '{self.device}'; set device: cpu (or auto), "
                "or on a GPU drop quantize and use dtype: bfloat16"
            )
        if self.quantize == "int8" and self.dtype not in ("auto", "float32"):
            raise ValueError(f"quantize: int8 keeps the rest of the model in float32; drop dtype: {self.dtype}")
        return self


class DetectorConfig(_Strict):
    """A classifier over (question, answer) pairs with one harmfulness output."""

    kind: Literal["classifier"] = "classifier"
    model: ModelSpec
    template: Literal["auto", "text_pair", "paper"] = Field(
        "auto", description="How a pair is shown: encoders take a text pair, decoders the paper's template."
    )
    score_meaning: Literal["harmful", "safe"] = Field(
        "harmful", description="What the checkpoint's output estimates; `safe` is inverted once, at load."
    )
    batch_size: int = Field(32, ge=1, description="Inputs (answer windows) per forward pass.")
    max_padding: float | None = Field(
        0.25,
        ge=0,
        description="A batch ends before its padding exceeds this share of its real tokens (null: no limit).",
    )
    window_tokens: int = Field(
        384, ge=8, description="Answer tokens per window: a longer answer is read in overlapping windows."
    )
    window_stride: int = Field(256, ge=1, description="Tokens between window starts (at most `window_tokens`).")

    @model_validator(mode="after")
    def _stride_fits(self) -> Self:
        _check_windows(self.window_tokens, self.window_stride)
        return self


def _check_windows(window_tokens: int, window_stride: int) -> None:
    """Windows that leave no answer token unread: the stride is at most the window."""
    if window_stride > window_tokens:
        raise ValueError(
            f"window_stride ({window_stride}) must not exceed window_tokens ({window_tokens}), "
            "or parts of long answers would never be read"
        )


def _http_url(url: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError("must be the service's base URL, like 'http://127.0.0.1:8000' (http or https, no query)")
    return url.rstrip("/")


class RemoteDetectorConfig(_Strict):
    """A detector served elsewhere (``mllm-protector serve``): pairs go out over HTTP, scores come back.

    Thresholds and actions stay with the caller; every network failure is a model failure (``on_error``).
    """

    kind: Literal["remote"] = "remote"
    url: Annotated[str, Field(max_length=2048), AfterValidator(_http_url)] = Field(
        description="Base URL of the service; pairs are POSTed to `{url}/v1/check`."
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Seconds allowed for each attempt.")
    retries: int = Field(2, ge=0, le=10, description="Further attempts after a connection error or a 5xx reply.")
    backoff_s: float = Field(0.2, ge=0, le=30, description="Wait before the first retry; doubled for each next one.")
    batch_size: int = Field(64, ge=1, le=4096, description="Pairs per request (at most the server's limit).")
    api_key_env: EnvVarName | None = Field(
        None, description="Environment variable holding the service's key (sent as a Bearer token); unset: none."
    )


GuardFormat = Literal["llama-guard-3", "llama-guard-4", "shieldgemma", "wildguard", "granite-guardian"]
"""The prompt formats of the guard LMs a ``guard_lm`` detector reads (docs/choosing-a-detector.md)."""
GUARD_FORMATS: tuple[GuardFormat, ...] = get_args(GuardFormat)
ShieldGemmaPolicy = Literal["dangerous_content", "harassment", "hate_speech", "sexually_explicit"]
SHIELDGEMMA_POLICIES: tuple[ShieldGemmaPolicy, ...] = get_args(ShieldGemmaPolicy)
_LlamaGuardCode = Annotated[str, Field(pattern=r"^S[1-9][0-9]?$")]


class GuardLMConfig(_Strict):
    """A generative guard model read as a detector: P(unsafe) is the softmax over its two label tokens at the first
    answer position of its own prompt format, from one forward pass (WildGuard's third line: three)."""

    kind: Literal["guard_lm"] = "guard_lm"
    format: GuardFormat = Field(description="The model's prompt format: " + ", ".join(GUARD_FORMATS) + ".")
    model: ModelSpec
    batch_size: int = Field(8, ge=1, description="Prompts per forward pass.")
    max_padding: float | None = Field(
        0.25,
        ge=0,
        description="A batch ends before its padding exceeds this share of its real tokens (null: no limit).",
    )
    window_tokens: int = Field(
        2048, ge=8, description="Answer tokens per window, when a prompt would not fit in `model.max_length`."
    )
    window_stride: int = Field(1536, ge=1, description="Tokens between window starts (at most `window_tokens`).")
    categories: bool = Field(
        True,
        description="Name categories of harm: Llama Guard's by a short greedy continuation of flagged pairs, "
        "ShieldGemma's as one probability per policy.",
    )
    category_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Llama Guard: pairs scoring at least this get their categories read."
    )
    category_tokens: int = Field(24, ge=1, le=256, description="Llama Guard: most tokens of that continuation.")
    excluded_categories: list[_LlamaGuardCode] = Field(
        default_factory=list,
        description="Llama Guard: categories (S1, S2, ...) left out of the prompt, as its `excluded_category_keys`.",
    )
    policies: list[ShieldGemmaPolicy] | None = Field(
        None, description="ShieldGemma: the policies asked, one prompt each (null: all four)."
    )

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> Self:
        _check_windows(self.window_tokens, self.window_stride)
        if self.excluded_categories and not self.format.startswith("llama-guard"):
            raise ValueError(f"excluded_categories is a Llama Guard option; format {self.format} has none")
        if self.policies is not None and self.format != "shieldgemma":
            raise ValueError(f"policies is a ShieldGemma option; format {self.format} has none")
        if self.policies is not None and (not self.policies or len(set(self.policies)) != len(self.policies)):
            raise ValueError(f"policies must name each of {', '.join(SHIELDGEMMA_POLICIES)} at most once, at least one")
        return self


class CascadeConfig(_Strict):
    """Two detectors in turn: ``first`` decides every pair it scores outside ``band``; the pairs it scores inside
    the band (bounds included) go to ``second``, whose score is theirs. Each verdict says which one decided."""

    kind: Literal["cascade"] = "cascade"
    first: AnyDetectorConfig = Field(description="The cheap detector that sees every pair (e.g. the default).")
    second: AnyDetectorConfig = Field(description="The detector for the uncertain pairs (e.g. a guard LM).")
    band: Annotated[list[float], Field(min_length=2, max_length=2)] = Field(
        description="[low, high]: the first detector's scores that are sent on to the second."
    )

    @field_validator("band")
    @classmethod
    def _ordered_probabilities(cls, band: list[float]) -> list[float]:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError("must be [low, high] with 0 <= low <= high <= 1")
        return band


def _detector_kind(value: Any) -> str:
    """The tag of a detector config: its ``kind``, where a mapping without one is a classifier."""
    kind = value.get("kind", "classifier") if isinstance(value, Mapping) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else ""


AnyDetectorConfig = Annotated[
    Annotated[DetectorConfig, Tag("classifier")]
    | Annotated[RemoteDetectorConfig, Tag("remote")]
    | Annotated[GuardLMConfig, Tag("guard_lm")]
    | Annotated[CascadeConfig, Tag("cascade")],
    Discriminator(
        _detector_kind,
        custom_error_type="detector_kind",
        custom_error_message="detector `kind` must be 'classifier' (the default), 'remote', 'guard_lm' or 'cascade'",
    ),
]
"""Every detector kind; a config without ``kind`` is a classifier."""

CascadeConfig.model_rebuild()


def cascades(config: AnyDetectorConfig) -> list[CascadeConfig]:
    """Every cascade in a detector config, outermost first (a cascade's detectors may be cascades)."""
    if not isinstance(config, CascadeConfig):
        return []
    return [config, *cascades(config.first), *cascades(config.second)]


class BatchingConfig(_Strict):
    """Micro-batching: concurrent calls on one protector share detector passes (see ``batcher.py``)."""

    max_batch_size: int = Field(32, ge=1, le=65536, description="Most pairs gathered into one detector call.")
    max_wait_ms: float = Field(
        5.0, ge=0, le=10_000, description="Longest a call waits for others to join its batch (from its arrival)."
    )
    max_queue: int = Field(1024, ge=1, le=1_000_000, description="Most calls waiting; beyond it a call fails.")
    workers: int = Field(
        1, ge=1, le=64, description="Threads scoring batches at once (more than one: CPU cores, or overlap on GPU)."
    )


Release = Literal["end", "verified"]


class StreamingConfig(_Strict):
    """How the adapters release a streamed answer (see docs/how-it-decides.md, "Streamed answers")."""

    release: Release = Field(
        "end",
        description="end: the whole answer is checked before any of it is shown; verified: text is shown as the "
        "windows over it pass, and the first flagged window ends the stream (needs a local classifier detector).",
    )
    first_window_tokens: int = Field(
        64,
        ge=0,
        le=100_000,
        description="verified: answer tokens in a short first window, checked like any other, so the first text "
        "shows early (0: none; at or above the detector's window_tokens: none).",
    )


class RefusalRewriterConfig(_Strict):
    """Replaces a flagged answer with the protector's `refusal_text`."""

    kind: Literal["refusal"] = "refusal"


class CausalLMRewriterConfig(_Strict):
    """The paper's detoxifier: a causal LM prompted with the question and the harmful answer."""

    kind: Literal["causal_lm"] = "causal_lm"
    model: ModelSpec
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _room_for_the_prompt(self) -> Self:
        if self.max_new_tokens >= self.model.max_length:
            raise ValueError(
                f"max_new_tokens ({self.max_new_tokens}) must be below model.max_length ({self.model.max_length}), "
                "which holds the prompt and the rewrite"
            )
        return self


RewriterConfig = Annotated[RefusalRewriterConfig | CausalLMRewriterConfig, Field(discriminator="kind")]


class ProtectorConfig(_Strict):
    """Everything a :class:`~protector_models.Protector` needs, as data."""

    detector: AnyDetectorConfig
    rewriter: RewriterConfig = Field(default_factory=RefusalRewriterConfig)
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Scores at or above this are flagged.")
    action: Action = Field("detoxify", description="What to do with a flagged answer.")
    refusal_text: str = Field(DEFAULT_REFUSAL, min_length=1)
    on_error: OnError = Field("raise", description="What to do when a model fails.")
    rescore_rewrites: bool = Field(
        True, description="Score each detoxified answer again; one still flagged is replaced by the refusal."
    )
    batching: BatchingConfig | None = Field(
        None, description="Gather concurrent calls into shared detector passes; off (null) by default."
    )
    streaming: StreamingConfig = Field(
        default_factory=StreamingConfig, description="How streamed answers are released by the adapters."
    )

    @model_validator(mode="after")
    def _verified_release_reads_windows(self) -> Self:
        if self.streaming.release == "verified" and isinstance(self.detector, RemoteDetectorConfig):
            raise ValueError(
                "streaming.release: verified scores a stream window by window with the detector's own tokenizer, "
                "which a remote detector does not expose; use release: end with a remote detector"
            )
        return self

    @model_validator(mode="after")
    def _threshold_inside_every_band(self) -> Self:
        for cascade in cascades(self.detector):
            low, high = cascade.band
            if not low <= self.threshold <= high:
                raise ValueError(
                    f"threshold {self.threshold:g} lies outside the cascade's band [{low:g}, {high:g}]: the first "
                    "detector alone would decide the pairs nearest the threshold; widen the band to contain it"
                )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate a mapping; a top-level ``preset`` key starts from that preset and overrides it."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a protector config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None:
            from protector_models.config.presets import PRESETS, preset_dict

            if not isinstance(preset, str) or preset not in PRESETS:
                kind = (
                    "unknown preset"
                    if isinstance(preset, str)
                    else f"preset must be a name, got {type(preset).__name__}"
                )
                raise ConfigError(f"{kind} {shown(preset)}; available presets: {', '.join(PRESETS)}")
            data = _deep_merge(preset_dict(preset), data)
        detector = data.get("detector")
        if isinstance(detector, Mapping) and detector.get("kind") == "remote" and "threshold" not in data:
            raise ConfigError(
                "threshold: required with a remote detector (detector.kind: remote): the service's threshold does "
                "not apply here, and the schema's 0.5 is no detector's; set the threshold of the model the service "
                "runs (the default preset's is 0.7096), or start from its preset (preset: default)"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error, cls)) from None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Self:
        """Read a YAML file (safe tags only; no anchors, aliases or duplicate keys; see ``config_yaml``).

        A relative ``source`` or ``adapter`` that exists beside the file is read relative to the file's folder,
        so the config works from any working directory. ``overrides`` replace top-level keys (``threshold=``).
        """
        path = Path(path)
        data = read_config_yaml(path)
        if data is None:
            raise ConfigError(f"{path} is empty; see docs/configuration.md for the schema")
        if isinstance(data, Mapping) and isinstance(data.get("protector"), Mapping):
            data = data["protector"]  # the `protector:` section of a larger framework config
        if isinstance(data, Mapping):
            data = {**_beside(data, path.parent), **overrides}
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Self:
        """A named preset (see :mod:`protector_models.config.presets`), with optional top-level overrides."""
        return cls.from_dict({"preset": name, **overrides})

    def requiring_pins(self) -> Self:
        """This config with ``require_pins`` set on every model (a cascade's too): a local directory without pins
        is refused."""
        return self.model_copy(
            update={"detector": _requiring_pins(self.detector), "rewriter": _requiring_pins(self.rewriter)}
        )

    def to_yaml(self) -> str:
        """Serialise to YAML that :meth:`from_yaml` reads back to an equal config."""
        return dump_config_yaml(self.model_dump(mode="json"))


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _requiring_pins(part: _ModelT) -> _ModelT:
    """``part`` (a detector, a cascade or a rewriter config) with ``require_pins`` on each model it holds."""
    if isinstance(part, CascadeConfig):
        return part.model_copy(update={"first": _requiring_pins(part.first), "second": _requiring_pins(part.second)})
    model = getattr(part, "model", None)
    if isinstance(model, ModelSpec):
        return part.model_copy(update={"model": model.model_copy(update={"require_pins": True})})
    return part


def _beside(data: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``data`` with each model's relative ``source`` and ``adapter`` made absolute where they exist in ``folder``;
    others are left as written (hub ids, or paths relative to the working directory), and so are the bundled ids,
    which never name a folder. A cascade's detectors too."""
    data = dict(data)
    for section in ("detector", "rewriter", "first", "second"):
        part = data.get(section)
        if not isinstance(part, Mapping):
            continue
        if part.get("kind") == "cascade":
            data[section] = _beside(part, folder)
            continue
        if not isinstance(part.get("model"), Mapping):
            continue
        model = dict(part["model"])
        for key in ("source", "adapter"):
            value = model.get(key)
            if not isinstance(value, str) or not value or value in BUNDLED_IDS or value.startswith("~"):
                continue
            try:
                found = not Path(value).is_absolute() and (folder / value).exists()
            except (OSError, ValueError):  # not a path at all (e.g. a NUL byte): validation says why
                found = False
            if found:
                model[key] = os.path.normpath((folder / value).absolute())
        data[section] = {**part, "model": model}
    return data


def load_config(config: ProtectorConfig | Mapping[str, Any] | str | Path) -> ProtectorConfig:
    """Accept a config object, a mapping, a YAML path, or a preset name."""
    if isinstance(config, ProtectorConfig):
        return config
    if isinstance(config, Mapping):
        return ProtectorConfig.from_dict(config)
    text = str(config)
    try:
        is_file = Path(text).is_file()
    except OSError:  # e.g. a name too long for a path: then it is no file
        is_file = False
    if text.endswith((".yaml", ".yml")) or is_file:
        return ProtectorConfig.from_yaml(text)
    return ProtectorConfig.from_preset(text)


def check_threshold(value: float | None, name: str = "threshold") -> float | None:
    """A threshold override: None (the configured one) or a number within [0, 1]; the error reads as for a config
    file."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0):
        raise ConfigError(f"{name}: must be a number within [0, 1] (got {shown(value)})")
    return value


def check_action(value: str | None) -> Action | None:
    """An action override: None, or one of :data:`ACTIONS`."""
    if value is not None and value not in ACTIONS:
        raise ConfigError(f"action: must be one of {', '.join(ACTIONS)} (got {shown(value)})")
    return value


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, Mapping)
            and old.get("kind") == value.get("kind", old.get("kind"))
        ):
            merged[key] = _deep_merge(old, value)
        else:
            merged[key] = value
    return merged


_MAX_PROBLEMS = 20


def validate_section(model: type[_ModelT], data: Any, source: str) -> _ModelT:
    """``data`` validated as ``model``; anything wrong is one :class:`ConfigError` naming ``source``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, model, f"invalid {source}")) from None


def describe_validation_error(
    error: ValidationError, model: type[BaseModel], title: str = "invalid protector config"
) -> str:
    """One line per problem: the field path, what was wrong, and what is accepted (unknown keys get the
    allowed ones, and the closest as a suggestion)."""
    lines = [f"{title} ({error.error_count()} problem{'s' * (error.error_count() > 1)}):"]
    for item in error.errors()[:_MAX_PROBLEMS]:
        path = ".".join(
            part if isinstance(part, str) and len(part) <= 80 else shown(part, 80)
            for part in _yaml_path(model, item["loc"])
        )
        parent = _model_at(model, item["loc"][:-1])
        if item["type"] == "extra_forbidden":
            allowed = sorted(parent.model_fields) if parent else []
            hint = difflib.get_close_matches(str(item["loc"][-1])[:80], allowed, n=1)
            did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
            lines.append(f"  {path}: unknown key{did_you_mean}; allowed keys: {', '.join(allowed)}")
            continue
        message = item["msg"]
        if item["type"] == "value_error":
            message = str(item.get("ctx", {}).get("error", message))
        elif item["type"] in _BOUNDS and parent and item["loc"] and str(item["loc"][-1]) in parent.model_fields:
            message = _bounds(parent.model_fields[str(item["loc"][-1])]) or message
        value = item.get("input")
        whole = item["type"] in ("missing", _SECRET_ERROR) or (
            item["type"] == "value_error" and isinstance(value, Mapping)
        )
        got = "" if whole else f" (got {shown(value)})"  # not the whole section around a missing key
        lines.append(f"  {path or '<root>'}: {message}{got}")
    if error.error_count() > _MAX_PROBLEMS:
        lines.append(f"  ... and {error.error_count() - _MAX_PROBLEMS} more")
    return "\n".join(lines)


_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _bounds(field: FieldInfo) -> str | None:
    """``must be a number within [0, 1]``, ``must be an integer of at least 1``, ...: a field's range in words."""
    limits = {type(item).__name__: f"{getattr(item, type(item).__name__.lower()):g}" for item in field.metadata}
    low = ("[", limits["Ge"]) if "Ge" in limits else ("(", limits["Gt"]) if "Gt" in limits else None
    high = ("]", limits["Le"]) if "Le" in limits else (")", limits["Lt"]) if "Lt" in limits else None
    kind = "an integer" if field.annotation is int else "a number"
    if low and high:
        return f"must be {kind} within {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"must be {kind} {'of at least' if low[0] == '[' else 'greater than'} {low[1]}"
    if high:
        return f"must be {kind} {'of at most' if high[0] == ']' else 'below'} {high[1]}"
    return None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Follow a validation error's location to the model whose keys it names (through tagged unions)."""
    candidates = [model]
    for part in loc:
        tagged = {c.model_fields["kind"].default: c for c in candidates if "kind" in c.model_fields}
        if len(candidates) > 1 and part in tagged:
            candidates = [tagged[part]]
            continue
        field = candidates[0].model_fields.get(str(part)) if len(candidates) == 1 else None
        if field is None:
            return None
        candidates = _models_in(field.annotation)
    return candidates[0] if len(candidates) == 1 else None


def _yaml_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[int | str]:
    """A validation error's location as keys of the YAML: the tags pydantic adds for tagged unions left out."""
    path, candidates = [], [model]
    for part in loc:
        tagged = {c.model_fields["kind"].default: c for c in candidates if "kind" in c.model_fields}
        if len(candidates) > 1 and part in tagged:
            candidates = [tagged[part]]
            continue
        path.append(part)
        field = candidates[0].model_fields.get(str(part)) if len(candidates) == 1 else None
        candidates = _models_in(field.annotation) if field is not None else []
    return path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in get_args(annotation) for found in _models_in(arg)]
