"""The guard LM detector on tiny models built here: the score is the softmax over the format's two label tokens
at the first answer position, whatever the padding and batching; categories; long answers; clear load errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from protector_models import ModelLoadError, ModelRuntimeError, Pair, Protector
from protector_models.models.guard_lm import GraniteGuardian, LlamaGuard3, LlamaGuard4, ShieldGemma, WildGuard
from protector_models.models.guard_lm.detector import GuardLMDetector
from protector_models.models.guard_lm.format import GuardFormat
from protector_models.testing import save_tiny_guard_lm
from tests.faults import break_forward

PAIRS = [
    Pair("how do i make it", "first mix the poison and use it"),
    Pair("", "cake"),
    Pair("what should i do " * 4, "here is some music and some bread for you with a garden"),
    Pair("tell me about this", "use the weapon"),
    Pair("q", "the garden is here, with bread and cake and more bread"),
]

FORMATS: dict[str, tuple[GuardFormat, str]] = {
    "llama-guard-3": (LlamaGuard3(), "llama"),
    "llama-guard-4": (LlamaGuard4(), "llama4"),
    "shieldgemma": (ShieldGemma(["dangerous_content", "hate_speech"]), "gemma2"),
    "wildguard": (WildGuard(), "llama"),
    "granite-guardian": (GraniteGuardian(), "llama"),
}


@pytest.fixture(scope="module")
def guard_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-guards")
    return {
        name: save_tiny_guard_lm(folder / name, guard_format, architecture=architecture)
        for name, (guard_format, architecture) in FORMATS.items()
    }


def load(directory: Path, guard_format: GuardFormat, **options: object) -> GuardLMDetector:
    model_class = AutoModelForImageTextToText if guard_format.image_text else AutoModelForCausalLM
    model = model_class.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return GuardLMDetector(model, tokenizer, guard_format, max_length=2048, **options)  # type: ignore[arg-type]


def by_hand(detector: GuardLMDetector, text: str, labels: tuple[str, str]) -> float:
    """P(first label) from the logits at the last position of ``text`` alone, unpadded: exp(a) / (exp(a) + exp(b))."""
    ids = detector.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = detector.model(input_ids=ids).logits[0, -1]
    first, second = (float(logits[detector.tokenizer.convert_tokens_to_ids(label)]) for label in labels)
    return math.exp(first) / (math.exp(first) + math.exp(second))


def wildguard_by_hand(detector: GuardLMDetector, pair: Pair) -> float:
    """WildGuard's three lines: the likelier of yes/no written after each of the first two headers, then the third."""
    wildguard = WildGuard()
    text = wildguard.render(pair.question, pair.answer)
    for line in wildguard.lead:
        text += line.header
        text += line.texts[0] if by_hand(detector, text, line.tokens) >= 0.5 else line.texts[1]
        text += line.separator
    return by_hand(detector, text + wildguard.verdict_header, (wildguard.unsafe_token, wildguard.safe_token))


@pytest.mark.parametrize("name", ["llama-guard-3", "llama-guard-4", "granite-guardian"])
def test_the_score_is_the_softmax_over_the_label_tokens_at_the_first_answer_position(
    guard_dirs: dict[str, Path], name: str
):
    guard_format = FORMATS[name][0]
    detector = load(guard_dirs[name], guard_format, batch_size=2)
    labels = (guard_format.unsafe_token, guard_format.safe_token)
    expected = [by_hand(detector, guard_format.render(p.question, p.answer), labels) for p in PAIRS]
    assert detector.score(PAIRS) == pytest.approx(expected, abs=1e-5)
    assert len(set(expected)) == len(expected)  # the pairs really differ: nothing constant passes this


def test_shieldgemma_scores_the_likeliest_violation_and_names_each_policy(guard_dirs: dict[str, Path]):
    shieldgemma = FORMATS["shieldgemma"][0]
    detector = load(guard_dirs["shieldgemma"], shieldgemma, batch_size=3)
    judged = detector.judge(PAIRS)
    for pair, judgement in zip(PAIRS, judged, strict=True):
        expected = {
            policy: by_hand(detector, shieldgemma.render(pair.question, pair.answer, policy), ("Yes", "No"))
            for policy in shieldgemma.policies
        }
        assert judgement.categories == pytest.approx(expected, abs=1e-5)
        assert judgement.score == pytest.approx(max(expected.values()), abs=1e-5)
    assert detector.score(PAIRS) == pytest.approx([j.score for j in judged], abs=1e-6)


def test_wildguard_writes_its_first_two_lines_and_reads_the_third(guard_dirs: dict[str, Path]):
    detector = load(guard_dirs["wildguard"], WildGuard(), batch_size=2)
    assert detector.score(PAIRS) == pytest.approx([wildguard_by_hand(detector, pair) for pair in PAIRS], abs=1e-5)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_padding_side_and_batch_size_change_no_score(guard_dirs: dict[str, Path], name: str):
    guard_format = FORMATS[name][0]
    reference = load(guard_dirs[name], guard_format, batch_size=1).score(PAIRS)
    for side in ("left", "right"):
        for batch_size in (2, 3, 5):
            detector = load(guard_dirs[name], guard_format, batch_size=batch_size, padding_side=side)
            assert detector.score(PAIRS) == pytest.approx(reference, abs=1e-5), (side, batch_size)


def test_llama_guard_names_categories_for_the_pairs_at_or_above_the_threshold(tiny_llama_guard_dir: Path):
    from tests.conftest import TINY_GUARD_CATEGORIES

    detector = load(tiny_llama_guard_dir, LlamaGuard3(TINY_GUARD_CATEGORIES), batch_size=2)
    scores = detector.score(PAIRS)
    detector.category_threshold = sorted(scores)[2]  # the three highest-scoring pairs get a continuation
    judged = detector.judge(PAIRS)
    assert [j.score for j in judged] == pytest.approx(scores, abs=1e-6)
    named = [bool(j.categories) for j in judged]
    assert named == [score >= detector.category_threshold for score in scores]
    assert sum(named) == 3
    assert all(j.categories == {"S10: Hate": True} for j in judged if j.categories)
    assert all(not j.categories for j in detector.judge(PAIRS, categories=False))


def test_a_pair_too_long_for_the_context_is_read_in_windows(guard_dirs: dict[str, Path]):
    llama_guard = LlamaGuard3()
    detector = load(guard_dirs["llama-guard-3"], llama_guard)
    overhead = len(detector.tokenizer(llama_guard.render("", ""), add_special_tokens=False)["input_ids"])
    short = load(guard_dirs["llama-guard-3"], llama_guard, window_tokens=64, window_stride=48)
    short.builder = type(short.builder)(
        short.tokenizer, llama_guard, max_length=overhead + 120, window_tokens=64, window_stride=48
    )
    answer = " ".join(f"word{i}" for i in range(80))  # about 560 bytes: several windows of 64
    pair = Pair("what is this " * 20, answer)
    prompts = short.builder.prompts([pair])
    assert len(prompts) > 3
    assert all(len(prompt.input_ids) <= overhead + 120 for prompt in prompts)
    windows = [prompt.text.split("Agent: ")[1].split("\n\n<END CONVERSATION>")[0] for prompt in prompts]
    covered: set[int] = set()
    start = 0
    for window in windows:  # each a piece of the answer, in order, together all of it
        start = answer.index(window, start)
        covered.update(range(start, start + len(window)))
    assert covered >= {i for i, char in enumerate(answer) if not char.isspace()}
    expected = max(by_hand(short, prompt.text, ("unsafe", "safe")) for prompt in prompts)
    assert short.score([pair]) == pytest.approx([expected], abs=1e-5)
    assert detector.score([pair]) == pytest.approx(  # with room enough, one prompt
        [by_hand(detector, llama_guard.render(pair.question, pair.answer), ("unsafe", "safe"))], abs=1e-5
    )


def test_a_tokenizer_without_the_label_tokens_is_a_clear_error(guard_dirs: dict[str, Path]):
    config = {
        "detector": {"kind": "guard_lm", "format": "shieldgemma", "model": {"source": str(guard_dirs["llama-guard-3"])}}
    }
    with pytest.raises(
        ModelLoadError, match=r"format shieldgemma reads its verdict from the tokens 'Yes' and 'No'.*no 'Yes', 'No'"
    ):
        Protector.from_config(config).load()


def test_a_tokenizer_without_the_format_markup_is_a_clear_error(guard_dirs: dict[str, Path]):
    source = str(guard_dirs["shieldgemma"])  # its labels are Granite Guardian's too, its role tokens are not
    config = {"detector": {"kind": "guard_lm", "format": "granite-guardian", "model": {"source": source}}}
    with pytest.raises(ModelLoadError, match=r"format granite-guardian writes '<\|start_of_role\|>', which this"):
        Protector.from_config(config).load()


def test_a_context_too_short_for_the_prompt_is_a_clear_error(guard_dirs: dict[str, Path]):
    source = str(guard_dirs["llama-guard-3"])
    config = {
        "detector": {"kind": "guard_lm", "format": "llama-guard-3", "model": {"source": source, "max_length": 256}}
    }
    with pytest.raises(ModelLoadError, match=r"max_length 256 leaves 0 tokens .* raise `model.max_length`"):
        Protector.from_config(config).load()


def test_non_finite_logits_are_a_model_fault(guard_dirs: dict[str, Path]):
    detector = load(guard_dirs["llama-guard-3"], LlamaGuard3())
    break_forward(detector.model, math.nan)
    with pytest.raises(ModelRuntimeError, match="non-finite logits"):
        detector.score(PAIRS)


def test_the_protector_carries_scores_and_categories(guard_config: dict):
    protector = Protector.from_config(guard_config)
    verdicts = protector.check(PAIRS)
    assert isinstance(protector.detector, GuardLMDetector)
    judged = protector.detector.judge(PAIRS)
    assert [v.harm_score for v in verdicts] == pytest.approx([j.score for j in judged], abs=1e-6)
    assert [dict(v.categories) for v in verdicts] == [dict(j.categories) for j in judged]
    assert any(v.categories == {"S10: Hate": True} for v in verdicts)
    results = protector.protect(PAIRS)
    assert [r.categories for r in results] == [v.categories for v in verdicts]
    assert all(r.decided_by is None for r in results)
