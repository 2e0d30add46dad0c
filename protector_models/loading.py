"""Loading tokenizers, models and LoRA adapters from a :class:`ModelSpec`, safely.

A source resolves in this order: an existing local directory, a bundled model (hash-checked), a hub id.
Weights load from safetensors only; ``trust_remote_code`` is passed through only when the spec asks for it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from protector_models.bundled import bundled_model
from protector_models.config import ModelSpec
from protector_models.devices import resolve_device, resolve_dtype
from protector_models.errors import ModelLoadError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with the tokenizer and the device it lives on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device


def resolve_source(source: str, revision: str | None) -> str:
    """A local directory for local and bundled sources, else the hub id unchanged."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model source {path} is a file; point `source` at the directory that holds it")
        return str(path)
    entry = bundled_model(source, revision)
    if entry is not None:
        return str(entry.path())
    if not _HUB_ID.match(source) or source.startswith(("/", ".", "~")):
        raise ModelLoadError(
            f"model directory {path} does not exist, and '{source}' is not a hub id (owner/name); "
            "fix `source` to an existing directory or a hub id"
        )
    return source


def load_sequence_classifier(spec: ModelSpec, *, allow_untrained_head: bool = False) -> LoadedModel:
    """A classifier with one harmfulness output: a bare backbone gets a fresh one-output head.

    A fresh head scores at random, so it is refused unless an adapter supplies the trained head or the caller
    is about to train it (``allow_untrained_head``).
    """
    source = resolve_source(spec.source, spec.revision)
    config = _call(AutoConfig.from_pretrained, source, spec, what="model config")
    is_classifier = any(arch.endswith("ForSequenceClassification") for arch in config.architectures or [])
    extra: dict[str, Any] = {} if is_classifier else {"num_labels": 1}
    if not is_classifier and spec.adapter is None and not allow_untrained_head:
        raise ModelLoadError(
            f"'{spec.source}' is a bare backbone without a trained classification head and no `adapter` was "
            "given; train one with `mllm-protector train-detector` or name an adapter that carries the head"
        )
    return _load(AutoModelForSequenceClassification, source, spec, extra)


def load_causal_lm(spec: ModelSpec) -> LoadedModel:
    """A causal LM for rewriting, its tokenizer padding on the left for batched generation."""
    loaded = _load(AutoModelForCausalLM, resolve_source(spec.source, spec.revision), spec, {})
    loaded.tokenizer.padding_side = "left"
    return loaded


def _load(auto_class: Any, source: str, spec: ModelSpec, extra: dict[str, Any]) -> LoadedModel:
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    adapter_dir = _resolve_adapter(spec) if spec.adapter else None
    tokenizer_source = (
        adapter_dir if adapter_dir and (Path(adapter_dir) / "tokenizer_config.json").is_file() else source
    )
    tokenizer = _call(AutoTokenizer.from_pretrained, tokenizer_source, spec, what="tokenizer", tokenizer=True)
    with _quiet_transformers(missing_head_expected=adapter_dir is not None or "num_labels" in extra):
        model = _call(
            auto_class.from_pretrained,
            source,
            spec,
            what="model weights",
            dtype=dtype,
            use_safetensors=True,
            **extra,
        )
    if adapter_dir is not None:
        model = _merge_adapter(model, adapter_dir, spec)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, device=device)


def _resolve_adapter(spec: ModelSpec) -> str:
    """A local adapter directory holding safetensors weights (hub adapters are fetched, safetensors only)."""
    assert spec.adapter is not None
    source = resolve_source(spec.adapter, spec.adapter_revision)
    if not Path(source).is_dir():
        try:
            from huggingface_hub import snapshot_download

            source = snapshot_download(
                source, revision=spec.adapter_revision, allow_patterns=["*.json", "*.safetensors"]
            )
        except Exception as error:
            raise ModelLoadError(
                f"could not fetch adapter '{spec.adapter}' from the Hugging Face hub ({type(error).__name__}: "
                f"{error}); download it on a connected machine and set `adapter` to its local directory"
            ) from None
    missing = [name for name in _ADAPTER_FILES if not (Path(source) / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"adapter {source} lacks {', '.join(missing)}; only PEFT adapters saved as safetensors are loaded "
            "(convert a .bin adapter with `safetensors`, or re-save it with `save_pretrained`)"
        )
    return source


def _merge_adapter(model: PreTrainedModel, adapter_dir: str, spec: ModelSpec) -> PreTrainedModel:
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelLoadError("loading a LoRA adapter needs peft: `pip install peft`") from None
    try:
        with warnings.catch_warnings():  # peft calls an API transformers 5 deprecated; nothing for users to do
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            merged = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload()
    except Exception as error:
        raise ModelLoadError(
            f"adapter {spec.adapter} does not fit model {spec.source} ({type(error).__name__}: {error}); "
            "check that the adapter was trained on this base model"
        ) from None
    return merged


def _call(loader: Any, source: str, spec: ModelSpec, *, what: str, tokenizer: bool = False, **kwargs: Any) -> Any:
    """Run a ``from_pretrained`` with the spec's options, turning its failures into one clear error."""
    options = dict(spec.tokenizer_kwargs if tokenizer else spec.model_kwargs)
    options.update(kwargs)
    if spec.revision and not Path(source).is_dir():
        options["revision"] = spec.revision
    try:
        return loader(source, trust_remote_code=spec.trust_remote_code, **options)
    except Exception as error:
        where = "local directory" if Path(source).is_dir() else "Hugging Face hub id"
        hint = (
            "check that the directory holds a complete `save_pretrained` output with safetensors weights"
            if Path(source).is_dir()
            else "the hub may be unreachable (or HF_HUB_OFFLINE=1 is set): download the model on a connected "
            "machine and set `source` to its local directory"
        )
        raise ModelLoadError(
            f"could not load the {what} from {where} '{source}' ({type(error).__name__}: {_first_line(error)}); {hint}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


@contextmanager
def _quiet_transformers(*, missing_head_expected: bool) -> Iterator[None]:
    """No per-file progress bars; no warning about a missing head that an adapter or training will supply."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    if missing_head_expected:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
