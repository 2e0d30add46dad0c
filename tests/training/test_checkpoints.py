"""Checkpoints restore exactly what was saved, and only into the run that saved them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protector_models.data.labelled import LabelledPair, PreferencePair
from protector_models.errors import ProtectorError
from protector_models.training.checkpoints import Progress, data_fingerprint, load_checkpoint, save_checkpoint


def _run() -> tuple[torch.nn.Linear, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.LinearLR(optimizer, total_iters=10)


def test_a_checkpoint_restores_weights_optimizer_schedule_random_state_and_progress(tmp_path: Path):
    model, optimizer, schedule = _run()
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    schedule.step()
    identity = {"settings": {"learning_rate": 0.1}, "data_sha256": "abc"}
    progress = Progress(losses=[0.7, 0.5], epoch_aurocs=[0.9], best_epoch=1, best_auroc=0.9)
    save_checkpoint(tmp_path, identity, dict(model.state_dict()), optimizer, schedule, progress)
    expected_draw = torch.rand(4)

    restored_model, restored_optimizer, restored_schedule = _run()
    torch.rand(7)  # move the random state on: the checkpoint's must come back
    restored = load_checkpoint(tmp_path, identity, restored_model, restored_optimizer, restored_schedule)
    assert torch.equal(torch.rand(4), expected_draw)
    assert restored == progress
    assert torch.equal(restored_model.weight, model.weight)
    assert restored_schedule.last_epoch == 1
    moments = restored_optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moments, optimizer.state_dict()["state"][0]["exp_avg"])


def test_a_checkpoint_is_refused_by_another_run_but_not_for_settings_added_or_freed_since(tmp_path: Path):
    model, optimizer, schedule = _run()
    save_checkpoint(  # by an older version, which kept a setting that may change now
        tmp_path, {"settings": {"splice": 0.1, "output_dir": "a"}, "data_sha256": "abc"}, {}, optimizer, schedule,
        Progress(),
    )  # fmt: skip
    newer = {"settings": {"splice": 0.1, "added_later": 3}, "data_sha256": "abc"}
    assert load_checkpoint(tmp_path, newer, model, optimizer, schedule) == Progress()
    with pytest.raises(ProtectorError, match=r"other settings \(splice 0.1 -> 0.2\)"):
        load_checkpoint(tmp_path, {"settings": {"splice": 0.2}, "data_sha256": "abc"}, model, optimizer, schedule)
    with pytest.raises(ProtectorError, match="other data"):
        load_checkpoint(tmp_path, {"settings": {"splice": 0.1}, "data_sha256": "abd"}, model, optimizer, schedule)


def test_the_data_fingerprint_changes_with_any_row_label_or_order():
    rows = [LabelledPair("q", "a", False, "s"), LabelledPair("q", "b", True, "s")]
    pairs = [PreferencePair("q", "good", "bad")]
    base = data_fingerprint(rows, pairs)
    assert data_fingerprint(list(rows), list(pairs)) == base
    assert data_fingerprint(rows[::-1], pairs) != base
    assert data_fingerprint([rows[0], LabelledPair("q", "b", False, "s")], pairs) != base
    assert data_fingerprint(rows, []) != base
