"""Loading tokenizers, models and LoRA adapters from a :class:`ModelSpec`, safely.

A source resolves in this order: a bundled model (hash-checked; its id never means a same-named folder here), an
existing local directory (checked against its pins; without pins a warning, or with ``require_pins`` an error), a
hub id. Weights load from safetensors only; ``trust_remote_code`` is passed through only when the spec asks for it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_flash_attention_utils import FLASH_ATTENTION_COMPATIBILITY_MATRIX, FLASH_ATTN_KERNEL_FALLBACK
from transformers.utils import logging as hf_logging

from protector_models.config.schema import ModelSpec
from protector_models.errors import ModelLoadError, shown
from protector_models.models.bundled import BUNDLED, bundled_model
from protector_models.models.devices import resolve_device, resolve_dtype
from protector_models.models.integrity import verify_pins
from protector_models.models.quantization import quantize_int8

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_TRUE = {"1", "ON", "YES", "TRUE"}  # as huggingface_hub reads its switches

logger = logging.getLogger(__name__)
_warned_unpinned: set[str] = set()  # local directories already warned about (once each per process)
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with the tokenizer and the device it lives on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device


def resolve_source(
    source: str,
    revision: str | None,
    sha256: Mapping[str, str] | None = None,
    *,
    key: str = "source",
    require_pins: bool = False,
) -> str:
    """A verified local directory for local, bundled and (offline) hub-cached sources, else the hub id unchanged.

    With ``sha256`` pins the files are checked before anything reads them: a hub id is then fetched first (only the
    pinned files). A local directory without pins is refused with ``require_pins``, else warned about once. ``key``
    names the config key that gave ``source``, for error messages.
    """
    directory, local = _local_directory(source, revision, key)
    if directory is None and sha256 is not None:
        directory = _hub_snapshot(source, revision, list(sha256), key)
    if directory is None:
        return source
    pins_key = "adapter_sha256" if key == "adapter" else "sha256"
    if sha256 is not None:
        hint = f"restore the file, or if the change is intended pin the new digests (`mllm-protector hash {directory}`)"
        verify_pins(directory, sha256, key=f"`{pins_key}`", hint=hint)
    elif local:
        _unpinned(directory, key, pins_key, require_pins)
    return str(directory)


def _unpinned(directory: Path, key: str, pins_key: str, require_pins: bool) -> None:
    """Refuse (``require_pins``) or warn about, once per directory, a local directory loaded without pins."""
    what = f"{key} {directory} is a local directory without `{pins_key}` pins"
    how = f"pin its files: `mllm-protector hash {directory}` prints them, to paste next to `{key}`"
    if require_pins:
        raise ModelLoadError(f"{what}, and require_pins is set; {how}")
    with _warned_lock:
        if str(directory) in _warned_unpinned:
            return
        _warned_unpinned.add(str(directory))
    logger.warning("%s: a changed or corrupt file would go unnoticed and could change the scores; %s", what, how)


def hub_offline() -> bool:
    """Whether the hub's offline switches (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) are on, read now."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return hf_constants.HF_HUB_OFFLINE or any(flag and flag.strip().upper() in _TRUE for flag in flags)


def _local_directory(source: str, revision: str | None, key: str) -> tuple[Path | None, bool]:
    """The directory ``source`` names here (a bundled, a local or, offline, a hub-cached one; None for a hub id
    that only the hub can resolve), and whether it is a local directory named by its path."""
    path = Path(source).expanduser()
    where = os.path.normpath(path.absolute())  # what a path-like source names, for messages
    if source in BUNDLED:  # a bundled id: the bundled files, or at another revision the hub's; never a folder here
        entry = bundled_model(source, revision)
        if entry is not None:
            return entry.path(), False
        if _exists(path):
            raise ModelLoadError(
                f"{key} '{source}' at revision '{revision}' is not the bundled copy but the Hugging Face hub's model, "
                f"and a folder {where} of that name is in the working directory: to load the folder, name it by a "
                f"path (`{key}: ./{source}`); else move it away"
            )
    elif _exists(path):
        if not path.is_dir():
            raise ModelLoadError(f"{key} {path} is a file; point `{key}` at the directory that holds it")
        return Path(where), True  # absolute: a relative path must not read as a hub id (or a bundled one) later
    if not _HUB_ID.match(source):
        raise ModelLoadError(
            f"no such local directory: {where}; fix `{key}` ({shown(source)} is no hub id, owner/name, either)"
        )
    if not hub_offline():
        return None, False
    probe = "adapter_config.json" if key == "adapter" else "config.json"
    try:
        cached = try_to_load_from_cache(source, probe, revision=revision)
    except ValueError:  # an id the hub would refuse (e.g. with "--"): never in the cache
        cached = None
    if isinstance(cached, str):
        return Path(cached).parent, False
    at = f" at revision '{revision}'" if revision else ""
    bundled = BUNDLED.get(source)
    also = f" (the bundled copy is revision '{bundled.revision}')" if bundled and bundled.revision else ""
    raise ModelLoadError(
        f"'{source}'{at} is no local directory (none at {where}), no bundled model{also}, and not in the "
        "Hugging Face hub cache, and the hub is offline (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set): download it "
        f"on a connected machine (`hf download {source} --local-dir DIR`) and set `{key}` to DIR"
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long for a path: then nothing is there
        return False


def _hub_snapshot(repo: str, revision: str | None, patterns: list[str], key: str) -> Path:
    """The hub-cache folder of ``repo`` at ``revision``, holding (at least) the files that match ``patterns``."""
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))
    except Exception as error:
        hint = _gated_hint(error, repo) or (
            f"there is no local directory {Path(repo).absolute()} either; download it on a connected machine and set "
            f"`{key}` to its local directory"
        )
        raise ModelLoadError(
            f"could not fetch {key} '{repo}' from the Hugging Face hub ({type(error).__name__}: {_first_line(error)}); "
            f"{hint}"
        ) from None


def load_sequence_classifier(spec: ModelSpec, *, allow_untrained_head: bool = False) -> LoadedModel:
    """A classifier with one harmfulness output: a bare backbone gets a fresh one-output head.

    A fresh head scores at random, so it is refused unless an adapter supplies the trained head or the caller
    is about to train it (``allow_untrained_head``).
    """
    source = resolve_source(spec.source, spec.revision, spec.sha256, require_pins=spec.require_pins)
    config = _call(AutoConfig.from_pretrained, source, spec, what="model config")
    is_classifier = any(arch.endswith("ForSequenceClassification") for arch in config.architectures or [])
    extra: dict[str, Any] = {} if is_classifier else {"num_labels": 1}
    if not is_classifier and spec.adapter is None and not allow_untrained_head:
        raise ModelLoadError(
            f"'{spec.source}' is a bare backbone without a trained classification head and no `adapter` was "
            "given; train one with `mllm-protector train-detector` or name an adapter that carries the head"
        )
    return _load(AutoModelForSequenceClassification, source, spec, extra, allow_missing=allow_untrained_head)


def load_causal_lm(spec: ModelSpec, *, image_text: bool = False) -> LoadedModel:
    """A causal LM (for rewriting, or a guard LM), its tokenizer padding on the left for batched generation.

    ``image_text``: the checkpoint is an image-text-to-text model (Llama Guard 4), loaded whole and given text only.
    """
    auto_class = AutoModelForImageTextToText if image_text else AutoModelForCausalLM
    source = resolve_source(spec.source, spec.revision, spec.sha256, require_pins=spec.require_pins)
    loaded = _load(auto_class, source, spec, {})
    loaded.tokenizer.padding_side = "left"
    return loaded


def _load(
    auto_class: Any, source: str, spec: ModelSpec, extra: dict[str, Any], *, allow_missing: bool = False
) -> LoadedModel:
    """Tokenizer, model and merged adapter; weights the checkpoint lacks must come from the adapter, since they
    would start random (unless ``allow_missing``: training is about to fit them)."""
    device = resolve_device("cpu" if spec.quantize == "int8" else spec.device)  # int8 kernels are CPU kernels
    dtype = resolve_dtype(spec.dtype, device)
    adapter_dir = resolve_adapter(spec) if spec.adapter else None
    tokenizer_source = (
        adapter_dir if adapter_dir and (Path(adapter_dir) / "tokenizer_config.json").is_file() else source
    )
    tokenizer = _call(AutoTokenizer.from_pretrained, tokenizer_source, spec, what="tokenizer", tokenizer=True)
    with _quiet_transformers(missing_head_expected=adapter_dir is not None or "num_labels" in extra):
        model, info = _call(
            auto_class.from_pretrained,
            source,
            spec,
            what="model weights",
            dtype=dtype,
            use_safetensors=True,
            output_loading_info=True,
            **extra,
            **_no_hub_kernels(spec),
        )
    untrained = set(info["missing_keys"])
    if adapter_dir is not None:
        model = _merge_adapter(model, adapter_dir, spec)
        untrained -= _adapter_weights(adapter_dir)
    if untrained and not allow_missing:
        names = ", ".join(sorted(untrained)[:6]) + " ..." * (len(untrained) > 6)
        supplier = f"adapter {spec.adapter} does not carry them" if adapter_dir else "no `adapter` supplies them"
        raise ModelLoadError(
            f"model {spec.source} has no weights for {names}, and {supplier}: they would start random and the "
            "scores would be noise; use a checkpoint saved whole (`save_pretrained`), or an adapter that carries "
            "these modules (PEFT `modules_to_save`)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    if spec.quantize == "int8":
        model = quantize_int8(model)
    return LoadedModel(model=model, tokenizer=tokenizer, device=device)


def _no_hub_kernels(spec: ModelSpec) -> dict[str, Any]:
    """Without ``trust_remote_code``, no compiled kernel comes from the hub: transformers' own kernel mapping is
    off (``use_kernels=False``; it fetches e.g. RMSNorm and GELU kernels on CUDA), and a flash attention whose
    package is not installed (transformers would fetch a hub build instead) is refused. Kernels named outright
    in ``model_kwargs`` are refused by the config's validation."""
    if spec.trust_remote_code:
        return {}
    requested = str(spec.model_kwargs.get("attn_implementation", "")).removeprefix("paged|")
    version = requested.removeprefix("flash_attention_")
    if requested in FLASH_ATTN_KERNEL_FALLBACK and version.isdigit():
        installed = FLASH_ATTENTION_COMPATIBILITY_MATRIX.get(int(version), {}).get("general_availability_check")
        if installed is None or not installed():
            raise ModelLoadError(
                f"model_kwargs.attn_implementation: {requested} needs its flash-attn package, which is not installed "
                f"here, so transformers would fetch a compiled kernel ({FLASH_ATTN_KERNEL_FALLBACK[requested]}) from "
                "the Hugging Face hub instead; install the package, drop attn_implementation (sdpa is the default), "
                "or set trust_remote_code: true to allow hub kernels"
            )
    return {"use_kernels": False}


def resolve_adapter(spec: ModelSpec) -> str:
    """A local adapter directory holding safetensors weights (hub adapters are fetched, safetensors only)."""
    assert spec.adapter is not None
    source = resolve_source(
        spec.adapter, spec.adapter_revision, spec.adapter_sha256, key="adapter", require_pins=spec.require_pins
    )
    if not Path(source).is_dir():
        source = str(_hub_snapshot(source, spec.adapter_revision, ["*.json", "*.safetensors"], "adapter"))
    missing = [name for name in _ADAPTER_FILES if not (Path(source) / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"adapter {source} lacks {', '.join(missing)}; only PEFT adapters saved as safetensors are loaded "
            "(convert a .bin adapter with `safetensors`, or re-save it with `save_pretrained`)"
        )
    return source


def _adapter_weights(adapter_dir: str) -> set[str]:
    """The base-model weight names that the adapter's file replaces outright (its ``modules_to_save``)."""
    with safe_open(str(Path(adapter_dir) / "adapter_model.safetensors"), "pt") as weights:
        return {name.removeprefix("base_model.model.") for name in weights.keys()}  # noqa: SIM118 - not a dict


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
            f"adapter {spec.adapter} does not fit model {spec.source} ({type(error).__name__}: {_first_line(error)}); "
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
            else _gated_hint(error, source)
            or f"there is no local directory {Path(source).absolute()} either, and the hub may be unreachable: "
            "download the model on a connected machine and set `source` to its local directory (with "
            "HF_HUB_OFFLINE=1 set, loading fails at once instead of retrying)"
        )
        raise ModelLoadError(
            f"could not load the {what} from {where} '{source}' ({type(error).__name__}: {_first_line(error)}); {hint}"
        ) from None


def _gated_hint(error: BaseException, repo: str) -> str | None:
    """How to get access, when ``error`` (or an error it was raised from) says ``repo`` is gated on the hub."""
    seen: BaseException | None = error
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        if isinstance(seen, GatedRepoError):
            return (
                f"'{repo}' is a gated model: request access on https://huggingface.co/{repo}, then log in with "
                "`hf auth login` or set HF_TOKEN to a token of the account that was granted access"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else "no message"
    return line if len(line) <= 300 else line[:297] + "..."


_quiet_lock = threading.Lock()
_quiet_loads: list[bool] = []  # one entry per load inside _quiet_transformers: whether it expects a missing head
_saved_settings: tuple[int, bool] = (0, False)


@contextmanager
def _quiet_transformers(*, missing_head_expected: bool) -> Iterator[None]:
    """No per-file progress bars; no warning about a missing head that an adapter or training will supply.

    transformers' verbosity and progress bars are process-wide: concurrent loads share them, so the first load in
    saves them, each load that expects a missing head keeps warnings off until it is done, and the last one out
    restores them.
    """
    global _saved_settings
    with _quiet_lock:
        if not _quiet_loads:
            _saved_settings = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
            hf_logging.disable_progress_bar()
        _quiet_loads.append(missing_head_expected)
        if missing_head_expected:
            hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_loads.remove(missing_head_expected)
            verbosity, bars = _saved_settings
            if not any(_quiet_loads):
                hf_logging.set_verbosity(verbosity)
            if not _quiet_loads and bars:
                hf_logging.enable_progress_bar()
