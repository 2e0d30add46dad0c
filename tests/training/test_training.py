"""Detector training: learns a toy task, saves what the loader reads, splits validation reproducibly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from protector_models import Protector, ProtectorConfig
from protector_models.errors import ModelLoadError, ProtectorError
from protector_models.evaluation.evaluate import evaluate
from protector_models.models.integrity import directory_pins
from protector_models.testing import save_tiny_classifier, toy_examples
from protector_models.training import DetectorTrainingArgs, train_detector
from protector_models.training import detector as detector_training
from protector_models.training.detector import split_validation


def test_split_is_stratified_and_reproducible():
    examples = toy_examples(100)
    train, validation = split_validation(examples, 0.2, seed=3)
    assert len(validation) == 20
    assert len(train) == 80
    assert sum(e.harmful for e in validation) == 10
    assert split_validation(examples, 0.2, seed=3) == (train, validation)
    assert split_validation(examples, 0.2, seed=4)[1] != validation


def test_lora_training_lowers_loss_and_saves_a_loadable_adapter(tmp_path: Path):
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(base),
        mode="lora",
        epochs=20,
        learning_rate=1e-2,
        batch_size=16,
        max_length=32,
        lora_targets=["query", "value"],
        val_fraction=0.25,
        patience=20,
        device="cpu",
    )
    outcome = train_detector(toy_examples(160), args)
    first, last = sum(outcome.losses[:5]) / 5, sum(outcome.losses[-5:]) / 5
    assert last < first * 0.7
    assert (outcome.output_dir / "adapter_model.safetensors").is_file()
    assert outcome.validation.n == 40
    assert outcome.validation.auroc is not None
    config = ProtectorConfig.from_yaml(outcome.output_dir / "protector.yaml")
    assert config.detector.model.adapter == str(outcome.output_dir.resolve())  # absolute: works from anywhere
    assert config.detector.model.adapter_sha256 == directory_pins(outcome.output_dir)  # every file, pinned
    assert config.detector.model.sha256 == directory_pins(base)  # the local base too
    _, validation = split_validation(toy_examples(160), 0.25, seed=args.seed)
    reloaded = evaluate(Protector.from_config(config), validation, threshold=outcome.threshold)
    assert reloaded.overall.auroc == pytest.approx(
        outcome.validation.auroc, abs=1e-6
    )  # the saved model is the trained one
    assert (reloaded.overall.tp, reloaded.overall.fp) == (outcome.validation.tp, outcome.validation.fp)
    assert outcome.validation.auroc > 0.8


def test_head_mode_trains_only_the_head(tmp_path: Path):
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(base),
        mode="head",
        epochs=1,
        batch_size=32,
        val_fraction=0.0,
        device="cpu",
    )
    outcome = train_detector(toy_examples(32), args)
    assert (outcome.output_dir / "model.safetensors").is_file()
    model = ProtectorConfig.from_yaml(outcome.output_dir / "protector.yaml").detector.model
    assert model.source == str(outcome.output_dir.resolve())
    assert model.sha256 == directory_pins(outcome.output_dir)
    config = outcome.output_dir / "config.json"  # the audit's case: one layer fewer in a copied backbone
    config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 1'))
    with pytest.raises(ModelLoadError, match=r"config\.json has SHA-256 .* expected"):
        Protector.from_yaml(outcome.output_dir / "protector.yaml").load()


def test_training_without_examples_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError, match="no training examples"):
        train_detector([], DetectorTrainingArgs(output_dir=str(tmp_path)))


def test_early_stopping_saves_the_best_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Validation labels are the opposite of training's, so validation AUROC falls as the model learns:
    training must stop after ``patience`` worse epochs and save the first epoch's weights."""
    train = toy_examples(160, seed=1)
    contrary = [replace(e, harmful=not e.harmful) for e in toy_examples(40, seed=2)]
    monkeypatch.setattr(detector_training, "split_validation", lambda *_: (train, contrary))
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(save_tiny_classifier(tmp_path / "base")),
        mode="full",
        epochs=10,
        learning_rate=3e-3,
        batch_size=16,
        max_length=32,
        patience=2,
        device="cpu",
    )
    outcome = train_detector(train + contrary, args)
    aurocs = [a for a in outcome.epoch_aurocs if a is not None]
    assert len(aurocs) == 3 < args.epochs
    assert outcome.best_epoch == 1
    assert outcome.validation.auroc == pytest.approx(aurocs[0], abs=1e-6)
    assert max(aurocs[1:]) <= aurocs[0]


def test_bfloat16_autocast_trains(tmp_path: Path):
    """It learns, and it really runs in bfloat16: the loss curve differs from float32's under the same seed."""
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(save_tiny_classifier(tmp_path / "base")),
        mode="full",
        epochs=10,
        learning_rate=3e-3,
        batch_size=16,
        max_length=32,
        precision="bfloat16",
        patience=10,
        device="cpu",
    )
    outcome = train_detector(toy_examples(160), args)
    assert sum(outcome.losses[-5:]) < 0.85 * sum(outcome.losses[:5])
    assert outcome.validation.auroc is not None
    assert outcome.validation.auroc > 0.8
    assert len(outcome.epoch_aurocs) <= args.epochs
    float32 = train_detector(toy_examples(160), replace(args, output_dir=str(tmp_path / "fp32"), precision="float32"))
    assert float32.losses != outcome.losses  # float32 runs are bit-for-bit reproducible (tested below)


def test_training_is_reproducible_for_a_seed(tmp_path: Path):
    base = save_tiny_classifier(tmp_path / "base")

    def run(name: str, seed: int) -> list[float]:
        args = DetectorTrainingArgs(
            output_dir=str(tmp_path / name), base=str(base), mode="lora", epochs=2, batch_size=16, seed=seed
        )
        return train_detector(toy_examples(64), args).losses

    first = run("a", seed=0)
    assert run("b", seed=0) == first
    assert run("c", seed=1) != first


def test_a_sources_validation_rows_do_not_depend_on_the_other_files():
    alone = toy_examples(60, seed=5)
    other = [replace(e, source="other") for e in toy_examples(40, seed=6)]
    _, validation = split_validation(alone, 0.2, seed=0)
    _, mixed = split_validation(other + alone, 0.2, seed=0)
    assert [e for e in mixed if e.source == "toy"] == validation


def test_a_detector_trained_with_relative_paths_loads_from_any_directory(tmp_path: Path, monkeypatch):
    """``train-detector`` run from one folder writes a protector.yaml that works from another."""
    import json

    from typer.testing import CliRunner

    from protector_models.cli import app

    monkeypatch.chdir(tmp_path)
    save_tiny_classifier(tmp_path / "base")
    rows = [{"question": e.question, "answer": e.answer, "harmful": e.harmful} for e in toy_examples(64)]
    Path("train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    trained = CliRunner().invoke(
        app,
        [
            "train-detector", "train.jsonl", "--base", "base", "-o", "a", "--lora-target", "query,value",
            "--epochs", "1", "--max-length", "32", "--val-fraction", "0.25", "--device", "cpu",
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    Path("in.jsonl").write_text(json.dumps(rows[0]) + "\n")
    scanned = CliRunner().invoke(app, ["scan", "in.jsonl", "-o", "-", "--config", "../a/protector.yaml"])
    assert scanned.exit_code == 0, scanned.output
    assert 0.0 <= json.loads(scanned.stdout)["harm_score"] <= 1.0
    model = Protector.from_yaml("../a/protector.yaml").config.detector.model  # type: ignore[union-attr]
    assert (model.source, model.adapter) == (str(tmp_path / "base"), str(tmp_path / "a"))


def test_max_steps_stops_mid_epoch(tmp_path: Path):
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"),
        base=str(base),
        epochs=3,
        batch_size=8,
        max_length=32,
        max_steps=5,
        lora_targets=["query", "value"],
        device="cpu",
    )
    outcome = train_detector(toy_examples(80), args)
    assert len(outcome.losses) == 5
    assert len(outcome.epoch_aurocs) == 1  # validated once, where it stopped


def test_training_continues_from_a_saved_adapter(tmp_path: Path):
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "a"),
        base=str(base),
        epochs=6,
        batch_size=16,
        max_length=32,
        learning_rate=1e-2,
        lora_targets=["query", "value"],
        val_fraction=0.25,
        device="cpu",
    )
    first = train_detector(toy_examples(160), args)
    fresh = replace(args, output_dir=str(tmp_path / "b"), epochs=1, learning_rate=1e-9)
    continued = train_detector(toy_examples(160), replace(fresh, init_adapter=str(first.output_dir)))
    restarted = train_detector(toy_examples(160), replace(fresh, output_dir=str(tmp_path / "c")))
    # a near-zero learning rate keeps what the adapter learnt; a fresh adapter starts from the untrained head
    assert continued.validation.auroc == pytest.approx(first.validation.auroc, abs=1e-6)
    assert restarted.validation.auroc < first.validation.auroc - 0.2  # type: ignore[operator]


def test_a_source_weight_scales_how_often_that_sources_rows_are_drawn():
    sources = ["big"] * 16 + ["small"] * 4
    balanced = detector_training.source_weights(sources, 0.5)
    scaled = detector_training.source_weights(sources, 0.5, {"small": 0.5})
    assert balanced is not None
    assert scaled is not None
    assert scaled[:16] == balanced[:16]
    assert scaled[16:] == [w / 2 for w in balanced[16:]]
    unbalanced = detector_training.source_weights(sources, 0.0, {"small": 2.0})  # weights even without balancing
    assert unbalanced is not None
    assert sum(unbalanced[16:]) == pytest.approx(sum(unbalanced[:16]) / 2)


def test_a_source_weight_for_no_source_or_not_above_zero_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"no training rows: \['tyop'\]; the sources are \['toy'\]"):
        detector_training.source_weights(["toy"] * 4, 0.5, {"tyop": 0.5})
    args = DetectorTrainingArgs(output_dir=str(tmp_path), source_weight={"toy": 0.0})
    with pytest.raises(ValueError, match="source_weight for 'toy' must be above 0"):
        train_detector(toy_examples(20), args)


def test_the_command_refuses_a_source_weight_not_written_source_equals_weight():
    from protector_models.cli.train import parse_source_weights

    assert parse_source_weights(["a=0.5", "b = 2"]) == {"a": 0.5, "b": 2.0}
    for bad in ("a", "a=", "=0.5", "a=half"):
        with pytest.raises(ValueError, match="--source-weight takes SOURCE=WEIGHT"):
            parse_source_weights([bad])


def test_continuing_an_adapter_needs_lora_mode(tmp_path: Path):
    with pytest.raises(ValueError, match="init_adapter continues a LoRA adapter"):
        train_detector(toy_examples(20), DetectorTrainingArgs(output_dir=str(tmp_path), mode="full", init_adapter="x"))


def test_the_command_continues_an_adapter_with_splicing_for_a_few_steps(tmp_path: Path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from protector_models.cli import app

    monkeypatch.chdir(tmp_path)
    save_tiny_classifier(tmp_path / "base")
    rows = [
        {"question": e.question, "answer": e.answer, "harmful": e.harmful, "source": "toy"} for e in toy_examples(64)
    ]
    Path("train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = ["train.jsonl", "--base", "base", "--lora-target", "query", "--max-length", "32", "--device", "cpu"]
    assert CliRunner().invoke(app, ["train-detector", *common, "-o", "a", "--epochs", "1"]).exit_code == 0
    more = ["--init-adapter", "a", "--max-steps", "2", "--splice", "0.2", "--lora-dropout", "0"]
    more += ["--mismatch", "0.1", "--chat-turns", "0.3", "--written-harms", "0.2", "--source-weight", "toy=0.5"]
    more += ["--source-weight", "written_harms=2"]  # refused unless the generated rows joined the training rows
    continued = CliRunner().invoke(app, ["train-detector", *common, "-o", "b", *more, "--checkpoint-every", "1"])
    assert continued.exit_code == 0, continued.output
    saved = json.loads(Path("b/training_args.json").read_text())
    assert (saved["init_adapter"], saved["max_steps"], saved["splice"], saved["lora_dropout"]) == ("a", 2, 0.2, 0.0)
    assert saved["checkpoint_every"] == 1
    assert (saved["mismatch"], saved["chat_turns"], saved["written_harms"]) == (0.1, 0.3, 0.2)
    assert saved["source_weight"] == {"toy": 0.5, "written_harms": 2.0}
    nothing_to_resume = CliRunner().invoke(app, ["train-detector", *common, "-o", "d", "--resume"])
    assert nothing_to_resume.exit_code != 0
    assert "run without --resume" in nothing_to_resume.output
    assert "Traceback" not in nothing_to_resume.output
    missing = CliRunner().invoke(app, ["train-detector", *common, "-o", "c", "--init-adapter", "nowhere"])
    assert missing.exit_code != 0
    assert "nowhere" in missing.output
    assert "Traceback" not in missing.output


def test_the_ranking_term_alone_teaches_which_answer_is_worse(tmp_path: Path):
    """The labelled rows carry no signal (their topic word is cut out); only the preference pairs say which
    answers are harmful."""
    from protector_models.data.labelled import LabelledPair, PreferencePair
    from protector_models.evaluation.metrics import auroc
    from protector_models.testing import BENIGN_WORDS, HARMFUL_WORDS

    toy = toy_examples(96)
    topics = set(HARMFUL_WORDS) | set(BENIGN_WORDS)
    uninformative = [
        LabelledPair(e.question, " ".join(w for w in e.answer.split() if w not in topics), e.harmful, e.source)
        for e in toy
    ]
    harmful, benign = [e for e in toy if e.harmful], [e for e in toy if not e.harmful]
    preferences = [PreferencePair(h.question, b.answer, h.answer) for h, b in zip(harmful, benign, strict=True)]
    base = save_tiny_classifier(tmp_path / "base")
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "out"), base=str(base), mode="full", epochs=8, learning_rate=3e-3, batch_size=16,
        max_length=32, val_fraction=0.0, ranking_weight=4.0, device="cpu",
    )  # fmt: skip
    train_detector(uninformative, args, preferences)
    protector = Protector.from_yaml(tmp_path / "out" / "protector.yaml")
    held_out = toy_examples(40, seed=7)
    scores = [v.harm_score for v in protector.check([e.pair for e in held_out])]
    assert auroc([e.harmful for e in held_out], scores) > 0.95  # type: ignore[arg-type]


def test_forward_chunks_hold_whole_examples_within_the_limit():
    assert detector_training.forward_chunks([2, 1, 3, 1, 5, 1], 3) == [
        slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 5), slice(5, 6)
    ]  # fmt: skip
    assert detector_training.forward_chunks([1, 1, 1], None) == [slice(0, 3)]


def test_a_batch_run_in_parts_gives_the_same_update(tmp_path: Path):
    """Gradients summed over parts of whole examples equal the whole batch's: the same model comes out."""
    import json

    from protector_models.data.labelled import PreferencePair

    base = save_tiny_classifier(tmp_path / "base")
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no randomness between the two runs
    (base / "config.json").write_text(json.dumps(config))
    toy = toy_examples(48)
    long = [replace(e, answer=" ".join([e.answer] * 6)) for e in toy[:8]]  # several windows each
    harmful, benign = [e for e in toy if e.harmful], [e for e in toy if not e.harmful]
    preferences = [PreferencePair(h.question, b.answer, h.answer) for h, b in zip(harmful, benign, strict=True)]
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "whole"), base=str(base), epochs=1, batch_size=16, max_length=32,
        window_tokens=16, window_stride=8, lora_dropout=0.0, lora_targets=["query"], val_fraction=0.25,
        device="cpu",
    )  # fmt: skip
    whole = train_detector(toy + long, args, preferences)
    parts = train_detector(toy + long, replace(args, output_dir=str(tmp_path / "parts"), forward_batch=3), preferences)
    assert parts.losses == pytest.approx(whole.losses, rel=1e-4)
    assert parts.validation.auroc == pytest.approx(whole.validation.auroc, abs=1e-6)
    from safetensors.torch import load_file

    trained = [load_file(str(tmp_path / name / "adapter_model.safetensors")) for name in ("whole", "parts")]
    assert trained[0].keys() == trained[1].keys()
    for key in trained[0]:
        torch.testing.assert_close(trained[1][key], trained[0][key], rtol=1e-4, atol=1e-5)


def test_an_interrupted_run_resumed_from_its_checkpoint_ends_as_one_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Killed mid-epoch after a checkpoint taken at an epoch's end (before its validation), then resumed: the
    same losses and weights as an uninterrupted run, dropout and the ranking term's batches included."""
    from safetensors.torch import load_file

    from protector_models.data.labelled import PreferencePair

    base = save_tiny_classifier(tmp_path / "base")
    toy = toy_examples(64)
    harmful, benign = [e for e in toy if e.harmful], [e for e in toy if not e.harmful]
    preferences = [PreferencePair(h.question, b.answer, h.answer) for h, b in zip(harmful, benign, strict=True)]
    args = DetectorTrainingArgs(
        output_dir=str(tmp_path / "whole"), base=str(base), epochs=2, batch_size=16, max_length=32,
        learning_rate=1e-2, lora_targets=["query", "value"], checkpoint_every=4, device="cpu",
    )  # fmt: skip
    whole = train_detector(toy, args, preferences)
    steps_per_epoch = len(whole.losses) // 2
    assert steps_per_epoch == 4  # so the checkpoint falls at the first epoch's end
    assert not (tmp_path / "whole" / "checkpoint").exists()  # removed once the model is saved
    saved = ProtectorConfig.from_yaml(tmp_path / "whole" / "protector.yaml").detector.model
    assert saved.adapter_sha256 == directory_pins(tmp_path / "whole")  # the checkpoint's files are not pinned

    real_chunks, calls = detector_training.forward_chunks, []

    def killed_during_step_six(*arguments):
        calls.append(None)
        if len(calls) > 2 * 5:  # two calls a step: the labelled rows and the ranking pairs
            raise KeyboardInterrupt
        return real_chunks(*arguments)

    stopped = replace(args, output_dir=str(tmp_path / "stopped"))
    monkeypatch.setattr(detector_training, "forward_chunks", killed_during_step_six)
    with pytest.raises(KeyboardInterrupt):
        train_detector(toy, stopped, preferences)
    monkeypatch.setattr(detector_training, "forward_chunks", real_chunks)
    assert (tmp_path / "stopped" / "checkpoint" / "state.pt").is_file()
    with pytest.raises(ProtectorError, match="pass --resume"):
        train_detector(toy, stopped, preferences)  # a new run would overwrite the unfinished one
    with pytest.raises(ProtectorError, match=r"learning_rate 0.01 -> 0.001"):
        train_detector(toy, replace(stopped, learning_rate=1e-3), preferences, resume=True)
    with pytest.raises(ProtectorError, match="other data"):
        train_detector(toy[1:], stopped, preferences, resume=True)

    (tmp_path / "stopped").rename(tmp_path / "moved")  # a run may be resumed where its directory went
    resumed = train_detector(toy, replace(stopped, output_dir=str(tmp_path / "moved")), preferences, resume=True)
    assert resumed.losses == whole.losses
    assert resumed.epoch_aurocs == whole.epoch_aurocs
    assert resumed.threshold == whole.threshold
    trained = [load_file(str(tmp_path / name / "adapter_model.safetensors")) for name in ("whole", "moved")]
    for key in trained[0]:
        torch.testing.assert_close(trained[1][key], trained[0][key], rtol=0, atol=0)


def test_resuming_without_a_checkpoint_says_how_to_start(tmp_path: Path):
    args = DetectorTrainingArgs(output_dir=str(tmp_path / "out"), base=str(save_tiny_classifier(tmp_path / "b")))
    with pytest.raises(ProtectorError, match="run without --resume"):
        train_detector(toy_examples(16), args, resume=True)
