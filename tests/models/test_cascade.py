"""The cascade: the first detector decides outside the band, exactly the pairs it scores inside go to the second,
and each verdict names the detector that decided."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from protector_models import ConfigError, Detector, Pair, Protector, ProtectorConfig
from protector_models.interfaces import Judgement, judge_with
from protector_models.models.cascade import CascadeDetector

PAIRS = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "cake"),
    Pair("what should i do", "here is some music and some bread for you with a garden"),
    Pair("tell me about this", "use the weapon"),
    Pair("can you help me", "first you steal it then"),
    Pair("q", "the garden is here"),
    Pair("how do i make it", "then mix the bread"),
]


class Recording:
    """A real detector, recording the pairs it is asked about."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.seen: list[Pair] = []

    def judge(self, pairs: Sequence[Pair]) -> list[Judgement]:
        self.seen.extend(pairs)
        return judge_with(self.inner, pairs)

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        return [j.score for j in self.judge(pairs)]


@pytest.fixture(scope="module")
def first(keyword_detector_dir: Path) -> Detector:
    return Protector.from_config(
        {"detector": {"model": {"source": str(keyword_detector_dir), "max_length": 64}}}
    ).detector


@pytest.fixture(scope="module")
def second(tiny_llama_guard_dir: Path) -> Detector:
    from tests.conftest import TINY_GUARD_CATEGORIES

    model = {"source": str(tiny_llama_guard_dir), "max_length": 1024}
    detector = {
        "kind": "guard_lm",
        "format": "llama-guard-3",
        "model": model,
        "excluded_categories": TINY_GUARD_CATEGORIES,
    }
    return Protector.from_config({"detector": {**detector, "category_threshold": 0.0}}).detector


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_only_the_pairs_scored_inside_the_band_reach_the_second(first: Detector, second: Detector, side: str):
    scores = first.score(PAIRS)
    # the keyword detector's scores come in two clusters far apart (pairs within one may tie): the band holds one
    assert max(scores) - min(scores) > 0.5
    middle = (min(scores) + max(scores)) / 2
    band = (middle, 1.0) if side == "upper" else (0.0, middle)
    inside = [i for i, score in enumerate(scores) if band[0] <= score <= band[1]]
    assert 0 < len(inside) < len(PAIRS)
    recording = Recording(second)
    judged = CascadeDetector(first, recording, band=band).judge(PAIRS)
    assert recording.seen == [PAIRS[i] for i in inside]
    by_second = judge_with(second, [PAIRS[i] for i in inside])
    for index, judgement in enumerate(judged):
        if index in inside:
            expected = by_second[inside.index(index)]
            assert judgement == Judgement(expected.score, expected.categories, "second")
            assert judgement.categories == {"S10: Hate": True}
        else:
            assert judgement == Judgement(pytest.approx(scores[index], abs=1e-6), {}, "first")


def test_a_band_nothing_falls_in_never_calls_the_second(first: Detector, second: Detector):
    recording = Recording(second)
    scores = CascadeDetector(first, recording, band=(0.5, 0.5)).score(PAIRS)
    assert recording.seen == []
    assert scores == pytest.approx(first.score(PAIRS), abs=1e-6)


def test_the_full_band_sends_everything_on(first: Detector, second: Detector):
    recording = Recording(second)
    judged = CascadeDetector(first, recording, band=(0.0, 1.0)).judge(PAIRS)
    assert recording.seen == PAIRS
    assert [j.decided_by for j in judged] == ["second"] * len(PAIRS)


def test_nested_cascades_name_the_path_to_the_decider(first: Detector, second: Detector):
    inner = CascadeDetector(first, second, band=(0.0, 1.0))  # the inner one always asks its second
    judged = CascadeDetector(inner, first, band=(1.0, 1.0)).judge(PAIRS[:2])
    assert [j.decided_by for j in judged] == ["first.second", "first.second"]


def test_a_cascade_config_builds_one_and_verdicts_say_who_decided(keyword_detector_dir: Path, guard_config: dict):
    classifier = {"model": {"source": str(keyword_detector_dir), "max_length": 64}}
    config = {
        "detector": {"kind": "cascade", "first": classifier, "second": guard_config["detector"], "band": [0.2, 0.8]}
    }
    protector = Protector.from_config(config)
    assert isinstance(protector.detector, CascadeDetector)
    scores = protector.detector.first.score(PAIRS)
    verdicts = protector.check(PAIRS)
    assert [v.decided_by for v in verdicts] == ["second" if 0.2 <= s <= 0.8 else "first" for s in scores]
    results = protector.protect(PAIRS)
    assert [r.decided_by for r in results] == [v.decided_by for v in verdicts]


def test_the_threshold_must_lie_inside_the_band():
    cascade = {"kind": "cascade", "first": {"model": {"source": "a"}}, "second": {"model": {"source": "b"}}}
    with pytest.raises(ConfigError, match=r"threshold 0.9 lies outside the cascade's band \[0.2, 0.8\]"):
        ProtectorConfig.from_dict({"detector": {**cascade, "band": [0.2, 0.8]}, "threshold": 0.9})
    with pytest.raises(ConfigError, match=r"band: must be \[low, high\] with 0 <= low <= high <= 1"):
        ProtectorConfig.from_dict({"detector": {**cascade, "band": [0.8, 0.2]}})
    nested = {**cascade, "band": [0.0, 1.0], "first": {**cascade, "band": [0.6, 0.7]}}
    with pytest.raises(ConfigError, match=r"outside the cascade's band \[0.6, 0.7\]"):
        ProtectorConfig.from_dict({"detector": nested, "threshold": 0.5})


def test_a_cascade_read_from_yaml_finds_its_models_beside_the_file(tmp_path: Path, keyword_detector_dir: Path):
    (tmp_path / "classifier").symlink_to(keyword_detector_dir)
    (tmp_path / "protector.yaml").write_text(
        "detector:\n  kind: cascade\n  band: [0.1, 0.9]\n  first:\n    model: {source: classifier}\n"
        "  second:\n    kind: cascade\n    band: [0.0, 1.0]\n    first: {model: {source: classifier}}\n"
        "    second: {model: {source: classifier}}\n"
    )
    detector = ProtectorConfig.from_yaml(tmp_path / "protector.yaml").detector
    assert detector.first.model.source == str(tmp_path / "classifier")  # type: ignore[union-attr]
    assert detector.second.second.model.source == str(tmp_path / "classifier")  # type: ignore[union-attr]


async def test_the_micro_batcher_keeps_who_decided_and_the_categories(cascade_config: dict):
    protector = Protector.from_config({**cascade_config, "batching": {"max_batch_size": 8, "max_wait_ms": 1}})
    with protector:
        verdicts = protector.check(PAIRS)
        averdicts = await protector.acheck(PAIRS)
    assert {v.decided_by for v in verdicts} == {"first", "second"}
    assert all(v.categories == {"S10: Hate": True} for v in verdicts if v.decided_by == "second")
    assert [(v.decided_by, dict(v.categories)) for v in averdicts] == [
        (v.decided_by, dict(v.categories)) for v in verdicts
    ]
