"""The protector: score every answer, and replace the harmful ones according to the configured policy."""

from __future__ import annotations

import asyncio
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self, TypeVar

from protector_models.config.presets import DEFAULT_THRESHOLD, preset_dict
from protector_models.config.schema import (
    DEFAULT_REFUSAL,
    Action,
    AnyDetectorConfig,
    BatchingConfig,
    CascadeConfig,
    CausalLMRewriterConfig,
    GuardLMConfig,
    OnError,
    ProtectorConfig,
    RemoteDetectorConfig,
    RewriterConfig,
    StreamingConfig,
    check_action,
    check_threshold,
    load_config,
)
from protector_models.detox.rewriters import CausalLMRewriter, RefusalRewriter, Rewriter
from protector_models.errors import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    ModelLoadError,
    ModelRuntimeError,
    ProtectorError,
    shown,
)
from protector_models.interfaces import Detector, Judgement, judge_with
from protector_models.models.batcher import MicroBatcher
from protector_models.models.window_stream import WindowScorer, WindowStream
from protector_models.models.windows import Window
from protector_models.pairs import Pair, PairLike, as_pairs, text_problem
from protector_models.results import Result, Verdict
from protector_models.streaming import VerifiedStream

_T = TypeVar("_T")
_D = TypeVar("_D", bound=Detector)


class Protector:
    """Guards answers: ``check`` scores them, ``protect`` also replaces the flagged ones.

    ``Protector()`` is the embedded default (a MiniLM detector, its validated threshold, and a refusal), the
    same as ``Protector.from_preset("default")``; ``threshold`` defaults to 0.5 for a detector you pass in.
    Models load on first use, so building a protector is cheap. Benign answers come back byte-for-byte
    unchanged.

    With ``batching`` (a :class:`BatchingConfig`), concurrent calls from threads or asyncio share detector
    passes through a :class:`~protector_models.models.batcher.MicroBatcher`; :meth:`close` (or ``with``) stops its
    worker, after which this protector scores nothing more.

    ``streaming`` (a :class:`StreamingConfig`) says how the adapters release streamed answers; :meth:`stream`
    judges one streamed answer window by window.
    """

    def __init__(
        self,
        detector: Detector | None = None,
        rewriter: Rewriter | None = None,
        *,
        threshold: float | None = None,
        action: Action = "detoxify",
        refusal_text: str = DEFAULT_REFUSAL,
        on_error: OnError = "raise",
        rescore_rewrites: bool = True,
        batching: BatchingConfig | None = None,
        streaming: StreamingConfig | None = None,
    ) -> None:
        if threshold is None:  # the embedded default's own threshold, else the neutral 0.5
            threshold = DEFAULT_THRESHOLD if detector is None else 0.5
        check_threshold(threshold)
        check_action(action)
        if on_error not in ("raise", "block", "pass"):
            raise ConfigError(f"on_error: must be one of raise, block, pass (got {shown(on_error)})")
        if detector is not None and not isinstance(detector, Detector):
            hint = (
                "Protector.from_yaml(path)"
                if isinstance(detector, str | Path) and str(detector).endswith((".yaml", ".yml"))
                else "Protector.from_config({'detector': {'model': {'source': path}}})"
            )
            raise ConfigError(
                f"a detector needs a score(pairs) -> list[float] method; got {type(detector).__name__} "
                f"(to load a model from a path, use {hint})"
            )
        if rewriter is not None and not isinstance(rewriter, Rewriter):
            raise ConfigError(f"a rewriter needs a rewrite(pairs) -> list[str] method; got {type(rewriter).__name__}")
        if not isinstance(refusal_text, str) or text_problem(refusal_text):
            raise ConfigError(f"refusal_text must be text (str), got {refusal_text!r:.60}")
        self.threshold = threshold
        self.action: Action = action
        self.refusal_text = refusal_text
        self.on_error: OnError = on_error
        self.rescore_rewrites = rescore_rewrites
        if batching is not None and not isinstance(batching, BatchingConfig):
            raise ConfigError(f"batching must be a BatchingConfig or None; got {type(batching).__name__}")
        self.batching = batching
        if streaming is not None and not isinstance(streaming, StreamingConfig):
            raise ConfigError(f"streaming must be a StreamingConfig or None; got {type(streaming).__name__}")
        self.streaming = streaming or StreamingConfig()
        self.config: ProtectorConfig | None = None
        self._detector = detector
        self._rewriter = rewriter or RefusalRewriter(refusal_text)
        self._detector_factory: Callable[[], Detector] = _default_detector
        self._rewriter_factory: Callable[[], Rewriter] | None = None
        self._lock = threading.Lock()
        self._batcher: MicroBatcher | None = None
        self._parent: Protector | None = None  # a clone (`with_rewriter`) scores through its parent
        self._owns_detector = False
        self._closed = False

    @classmethod
    def from_config(
        cls, config: ProtectorConfig | Mapping[str, Any] | str | Path, *, rewriter: Rewriter | None = None
    ) -> Self:
        """Build from a config object, a mapping, a YAML path or a preset name; models load on first use.

        ``rewriter`` replaces the configured one (one a YAML file cannot name, such as a chat model).
        """
        config = load_config(config)
        protector = cls(
            rewriter=rewriter,
            threshold=config.threshold,
            action=config.action,
            refusal_text=config.refusal_text,
            on_error=config.on_error,
            rescore_rewrites=config.rescore_rewrites,
            batching=config.batching,
            streaming=config.streaming,
        )
        protector.config = config
        protector._detector_factory = lambda: _detector_from_config(config.detector)
        if rewriter is None:
            protector._rewriter_factory = _rewriter_factory(config.rewriter, config.refusal_text)
        return protector

    @classmethod
    def from_yaml(cls, path: str | Path) -> Self:
        """Build from a YAML file (see docs/configuration.md)."""
        return cls.from_config(ProtectorConfig.from_yaml(path))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Self:
        """Build from a named preset, with optional top-level overrides such as ``threshold``."""
        return cls.from_config(ProtectorConfig.from_preset(name, **overrides))

    @property
    def detector(self) -> Detector:
        """The detector, loaded on first access."""
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    self._detector = _load("detector", self._detector_factory)
                    self._owns_detector = self._parent is None
        return self._detector

    @property
    def batcher(self) -> MicroBatcher | None:
        """The micro-batcher in front of the detector, started on first use; None when batching is off."""
        if self._parent is not None:
            return self._parent.batcher
        if self.batching is None:
            return None
        if self._batcher is None:
            detector = self.detector  # loaded outside the lock, which loading takes
            with self._lock:
                if self._batcher is None:
                    self._batcher = MicroBatcher(detector, self.batching)
        return self._batcher

    @property
    def rewriter(self) -> Rewriter:
        """The rewriter, loaded on first access."""
        if self._rewriter_factory is not None:
            with self._lock:
                if self._rewriter_factory is not None:
                    self._rewriter = _load("rewriter", self._rewriter_factory)
                    self._rewriter_factory = None
        return self._rewriter

    def with_rewriter(self, rewriter: Rewriter) -> Protector:
        """The same detector (shared, loaded once) and policy, rewriting with ``rewriter``."""
        if not isinstance(rewriter, Rewriter):
            raise ConfigError(f"a rewriter needs a rewrite(pairs) -> list[str] method; got {type(rewriter).__name__}")
        clone = Protector(
            self._detector,
            rewriter,
            threshold=self.threshold,
            action=self.action,
            refusal_text=self.refusal_text,
            on_error=self.on_error,
            rescore_rewrites=self.rescore_rewrites,
            batching=self.batching,
            streaming=self.streaming,
        )
        clone.config = self.config
        clone._detector_factory = lambda: self.detector
        clone._parent = self  # shares this protector's micro-batcher; closing the clone closes nothing of ours
        return clone

    def load(self) -> Self:
        """Load every model now rather than on first use (and start the micro-batcher, if any)."""
        _ = self.detector, self.rewriter, self.batcher
        return self

    def close(self) -> None:
        """Stop the micro-batcher (after the calls already queued) and close a detector this protector built
        (a remote detector's connections). Later calls fail with :class:`ModelRuntimeError` (``on_error``)."""
        with self._lock:
            self._closed, batcher = True, self._batcher
        if batcher is not None:
            batcher.close()
        close = getattr(self._detector, "close", None) if self._owns_detector else None
        if callable(close):
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check(self, pairs: Sequence[PairLike], *, threshold: float | None = None) -> list[Verdict]:
        """Score pairs and compare with the threshold; nothing is rewritten."""
        pairs = as_pairs(pairs)
        verdicts, _ = self._check(pairs, self._threshold(threshold))
        return verdicts

    def protect(
        self, pairs: Sequence[PairLike], *, threshold: float | None = None, action: Action | None = None
    ) -> list[Result]:
        """Score pairs and act on the flagged ones; results come back in input order.

        ``threshold`` and ``action`` override the configured ones for this call.
        """
        pairs = as_pairs(pairs)
        action, threshold = self._action(action), self._threshold(threshold)
        verdicts, detect_ms = self._check(pairs, threshold)
        return self._act(pairs, verdicts, action, threshold, detect_ms)

    def _act(
        self, pairs: list[Pair], verdicts: list[Verdict], action: Action, threshold: float, detect_ms: float
    ) -> list[Result]:
        """The results of ``protect`` once the pairs are scored: refuse, rewrite or raise for the flagged ones."""
        results = [
            self._unrewritten(pair, verdict, action, detect_ms) for pair, verdict in zip(pairs, verdicts, strict=True)
        ]
        to_rewrite = [i for i, result in enumerate(results) if result.flagged and result.checked]
        if action == "raise" and to_rewrite:
            raise HarmfulContentError(results)
        if action == "detoxify" and to_rewrite:
            if isinstance(self.rewriter, RefusalRewriter):  # nothing to rewrite with: say it was a refusal
                for index in to_rewrite:
                    results[index] = replace(results[index], output=self.refusal_text, action="refuse")
            else:
                self._detoxify(pairs, results, to_rewrite, threshold)
        return results

    def protect_one(self, question: str, answer: str, **overrides: Any) -> Result:
        """:meth:`protect` for a single pair."""
        return self.protect([(question, answer)], **overrides)[0]

    async def acheck(self, pairs: Sequence[PairLike], *, threshold: float | None = None) -> list[Verdict]:
        """:meth:`check` without blocking the event loop: awaits the micro-batcher, or runs in a worker thread."""
        batcher = await self._abatcher()
        if batcher is None:
            return await asyncio.to_thread(self.check, pairs, threshold=threshold)
        verdicts, _ = await self._acheck(as_pairs(pairs), self._threshold(threshold), batcher)
        return verdicts

    async def aprotect(
        self, pairs: Sequence[PairLike], *, threshold: float | None = None, action: Action | None = None
    ) -> list[Result]:
        """:meth:`protect` without blocking the event loop (a rewriter model runs in a worker thread)."""
        batcher = await self._abatcher()
        if batcher is None:
            return await asyncio.to_thread(self.protect, pairs, threshold=threshold, action=action)
        pairs = as_pairs(pairs)
        action, threshold = self._action(action), self._threshold(threshold)
        verdicts, detect_ms = await self._acheck(pairs, threshold, batcher)
        if action == "detoxify" and any(v.flagged and v.checked for v in verdicts):
            return await asyncio.to_thread(self._act, pairs, verdicts, action, threshold, detect_ms)
        return self._act(pairs, verdicts, action, threshold, detect_ms)

    def stream(
        self, question: str = "", *, threshold: float | None = None, action: Action | None = None
    ) -> VerifiedStream:
        """Judge one streamed answer to ``question`` as it arrives (verified release; see
        :class:`~protector_models.streaming.VerifiedStream`): feed it the model's text, show what it returns.

        Needs a detector that reads windows locally (a classifier); the micro-batcher is not used.
        """
        if not isinstance(question, str) or text_problem(question):
            raise InvalidInputError(f"the question must be valid text (str), got {question!r:.60}")
        action, threshold = self._action(action), self._threshold(threshold)
        detector = self.detector
        if not isinstance(detector, WindowScorer):
            raise ConfigError(
                f"verified streaming scores an answer window by window, which this detector "
                f"({type(detector).__name__}) cannot do; use streaming: {{release: end}}, or a classifier detector"
            )

        def score(windows: Sequence[Window]) -> list[float]:
            return _valid_scores(self._open(detector).score_windows(windows), len(windows))

        def act(pair: Pair, verdict: Verdict) -> Result:
            return self._act([pair], [verdict], action, threshold, 0.0)[0]

        return VerifiedStream(
            WindowStream(detector.encoder, question, self.streaming.first_window_tokens),
            threshold=threshold,
            stop_on_flag=action != "pass",
            score=score,
            failed=lambda error: self._unscored(error, [0], 1)[0],
            act=act,
        )

    def _scorer(self) -> Detector:
        """What scores pairs: the micro-batcher when batching is on, else the detector (either loaded now)."""
        return self.batcher or self.detector

    def _open(self, scorer: _D) -> _D:
        """``scorer``, unless this protector is closed: that is a model failure, so ``on_error`` applies."""
        if self._closed:
            raise ModelRuntimeError("this Protector is closed; it scores nothing more")
        return scorer

    async def _abatcher(self) -> MicroBatcher | None:
        """The micro-batcher for an async call (loading the model in a thread on first use), or None."""
        owner = self._parent or self
        if owner.batching is None or self._closed:
            return None
        if owner._batcher is None:  # the first call loads the model: not on the event loop
            return await asyncio.to_thread(lambda: owner.batcher)
        return owner._batcher

    def _check(self, pairs: list[Pair], threshold: float) -> tuple[list[Verdict], float]:
        if not pairs:
            return [], 0.0
        scorer = self._scorer()  # a model that cannot load is a configuration error, whatever on_error says
        worded = _worded(pairs)
        started = time.perf_counter()
        try:
            judgements = judge_with(self._open(scorer), [pairs[i] for i in worded]) if worded else []
            return self._verdicts(_valid_judgements(judgements, len(worded)), worded, len(pairs), threshold, started)
        except Exception as error:
            return self._unscored(error, worded, len(pairs)), 0.0

    async def _acheck(self, pairs: list[Pair], threshold: float, batcher: MicroBatcher) -> tuple[list[Verdict], float]:
        if not pairs:
            return [], 0.0
        worded = _worded(pairs)
        started = time.perf_counter()
        try:
            judgements = await self._open(batcher).ajudge([pairs[i] for i in worded]) if worded else []
            return self._verdicts(_valid_judgements(judgements, len(worded)), worded, len(pairs), threshold, started)
        except Exception as error:
            return self._unscored(error, worded, len(pairs)), 0.0

    @staticmethod
    def _verdicts(
        judgements: list[Judgement], worded: list[int], count: int, threshold: float, started: float
    ) -> tuple[list[Verdict], float]:
        """The worded pairs' verdicts from their ``judgements``; a blank answer passes at any threshold."""
        detect_ms = (time.perf_counter() - started) * 1000 / count
        verdicts = [
            Verdict(j.score, j.score >= threshold, categories=j.categories, decided_by=j.decided_by) for j in judgements
        ]
        return _with_blank_answers(verdicts, worded, count), detect_ms

    def _unscored(self, error: Exception, worded: list[int], count: int) -> list[Verdict]:
        """The verdicts when the detector failed on the worded pairs (``on_error`` pass or block; a blank answer
        still passes), or the error to raise."""
        if isinstance(error, ProtectorError):
            if not (isinstance(error, ModelRuntimeError) and self.on_error != "raise"):
                raise error
            message = str(error)
        else:
            message = f"detector failed: {type(error).__name__}: {error}"
            if self.on_error == "raise":
                raise ModelRuntimeError(message) from error
        return _with_blank_answers(self._unchecked(len(worded), message), worded, count)

    def _unchecked(self, count: int, error: str) -> list[Verdict]:
        """Verdicts for pairs the detector could not score: flagged under ``on_error="block"``."""
        return [Verdict(None, self.on_error == "block", checked=False, error=error)] * count

    def _unrewritten(self, pair: Pair, verdict: Verdict, action: Action, detect_ms: float) -> Result:
        """The result before any rewriting: the original, a refusal, or the unchecked answer."""
        result = Result(
            question=pair.question,
            original=pair.answer,
            output=pair.answer,
            harm_score=verdict.harm_score,
            flagged=verdict.flagged,
            action="none",
            categories=verdict.categories,
            decided_by=verdict.decided_by,
            detect_ms=detect_ms,
        )
        if not verdict.checked:
            if self.on_error == "block":
                return replace(
                    result,
                    output=self.refusal_text,
                    flagged=True,
                    action="block",
                    checked=False,
                    error=verdict.error,
                )
            return replace(result, action="unchecked", checked=False, error=verdict.error)
        if not verdict.flagged:
            return result
        if action == "refuse":
            return replace(result, output=self.refusal_text, action="refuse")
        return replace(result, action="annotate")

    def _detoxify(self, pairs: list[Pair], results: list[Result], indices: list[int], threshold: float) -> None:
        """Rewrite the flagged answers in place; a failed, empty or still-harmful rewrite falls back to the refusal.

        With ``rescore_rewrites`` each non-empty rewrite is scored as (question, rewrite) at the same threshold.
        """
        started = time.perf_counter()
        error = None
        try:
            rewrites = _valid_rewrites(self.rewriter.rewrite([pairs[i] for i in indices]), len(indices))
        except Exception as failure:
            error = f"rewriter failed: {type(failure).__name__}: {failure}"
            if self.on_error == "raise":
                raise ModelRuntimeError(error) from failure
            rewrites = [""] * len(indices)  # a known-harmful answer is never passed on: refuse instead
        problems = [error or _rewrite_problem(text) for text in rewrites]
        texts: list[str] = [text if problem is None else "" for text, problem in zip(rewrites, problems, strict=True)]
        if self.rescore_rewrites:
            self._rescore(pairs, indices, texts, problems, threshold)
        rewrite_ms = (time.perf_counter() - started) * 1000 / len(indices)
        for index, text, problem in zip(indices, texts, problems, strict=True):
            if problem is None:
                results[index] = replace(results[index], output=text, action="detoxify", rewrite_ms=rewrite_ms)
            else:
                results[index] = replace(
                    results[index], output=self.refusal_text, action="refuse", error=problem, rewrite_ms=rewrite_ms
                )

    def _rescore(
        self, pairs: list[Pair], indices: list[int], texts: list[str], problems: list[str | None], threshold: float
    ) -> None:
        """Mark each rewrite the detector still flags (or cannot score) as a problem, in place."""
        todo = [k for k, problem in enumerate(problems) if problem is None]
        if not todo:
            return
        try:
            scores = _valid_scores(
                self._open(self._scorer()).score([Pair(pairs[indices[k]].question, texts[k]) for k in todo]), len(todo)
            )
        except Exception as failure:
            message = f"scoring the rewrite failed: {type(failure).__name__}: {failure}"
            if self.on_error == "raise":
                raise ModelRuntimeError(message) from failure
            for k in todo:  # an unchecked rewrite of a harmful answer is not passed on either
                problems[k] = f"{message}; refused instead"
            return
        for k, score in zip(todo, scores, strict=True):
            if score >= threshold:
                problems[k] = f"the rewrite still scored harmful ({score:.3f} >= {threshold:g}); refused instead"

    def _threshold(self, override: float | None) -> float:
        return self.threshold if check_threshold(override) is None else override  # type: ignore[return-value]

    def _action(self, override: Action | None) -> Action:
        return check_action(override) or self.action


def _valid_scores(scores: Any, expected: int) -> list[float]:
    """The detector's scores as floats; a wrong count or a score that is no probability is a model fault."""
    if isinstance(scores, (str, bytes, Mapping)) or not isinstance(scores, Iterable):
        raise ModelRuntimeError(f"detector returned {type(scores).__name__}, not a list of {expected} scores")
    values = list(scores)
    if len(values) != expected:
        raise ModelRuntimeError(f"detector returned {len(values)} scores for {expected} pairs")
    bad = [i for i, value in enumerate(values) if not _is_probability(value)]
    if bad:
        raise ModelRuntimeError(
            f"detector returned scores that are not finite numbers in [0, 1] at positions {bad[:10]} "
            f"(e.g. {values[bad[0]]!r})"
        )
    return [float(value) for value in values]


def _valid_judgements(judgements: Any, expected: int) -> list[Judgement]:
    """The detector's judgements with valid scores; a wrong count, a score that is no probability or categories
    that are not a mapping of names to numbers are a model fault."""
    if isinstance(judgements, (str, bytes, Mapping)) or not isinstance(judgements, Iterable):
        raise ModelRuntimeError(f"detector returned {type(judgements).__name__}, not a list of {expected} judgements")
    values = list(judgements)
    if not all(isinstance(value, Judgement) for value in values):
        raise ModelRuntimeError(f"detector returned {shown(values)}, not a list of Judgement")
    scores = _valid_scores([value.score for value in values], expected)
    for index, value in enumerate(values):
        if not isinstance(value.categories, Mapping) or not all(
            isinstance(name, str) and isinstance(level, numbers.Real) for name, level in value.categories.items()
        ):
            raise ModelRuntimeError(
                f"detector returned categories at position {index} that are not names with numbers or flags: "
                f"{shown(value.categories)}"
            )
    return [replace(value, score=score) for value, score in zip(values, scores, strict=True)]


def _is_probability(value: object) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value) and 0.0 <= float(value) <= 1.0


def _valid_rewrites(rewrites: Any, expected: int) -> list[Any]:
    """The rewriter's texts as a list; a wrong count or a lone string is a model fault."""
    if isinstance(rewrites, (str, bytes, Mapping)) or not isinstance(rewrites, Iterable):
        raise ModelRuntimeError(f"rewriter returned {type(rewrites).__name__}, not a list of {expected} texts")
    texts = list(rewrites)
    if len(texts) != expected:
        raise ModelRuntimeError(f"rewriter returned {len(texts)} texts for {expected} answers")
    return texts


def _rewrite_problem(text: object) -> str | None:
    """Why a rewrite cannot be passed on (the answer is refused instead), or None when it can."""
    if not isinstance(text, str):
        return f"rewriter returned {type(text).__name__}, not text; refused instead"
    if not text.strip():
        return "rewriter returned an empty text; refused instead"
    problem = text_problem(text)
    return f"rewriter returned invalid text ({problem}); refused instead" if problem else None


def _load(what: str, factory: Callable[[], _T]) -> _T:
    """Call ``factory``; a failure that is not already one of ours becomes a :class:`ModelLoadError`."""
    try:
        return factory()
    except ProtectorError:
        raise
    except Exception as error:
        raise ModelLoadError(f"loading the {what} failed: {type(error).__name__}: {error}") from error


def _rewriter_factory(config: RewriterConfig, refusal_text: str) -> Callable[[], Rewriter]:
    if isinstance(config, CausalLMRewriterConfig):
        return lambda: CausalLMRewriter.from_config(config)
    return lambda: RefusalRewriter(refusal_text)


BLANK_ANSWER_SCORE = 0.0
"""The score of an answer with no text (empty or whitespace): it says nothing, so it cannot be harmful. It is not
sent to the detector (which was never trained on one) and passes at any threshold."""


def _worded(pairs: Sequence[Pair]) -> list[int]:
    """The positions of pairs whose answer has text: the ones the detector scores."""
    return [index for index, pair in enumerate(pairs) if pair.answer.strip()]


def _with_blank_answers(verdicts: list[Verdict], worded: list[int], count: int) -> list[Verdict]:
    """All ``count`` verdicts: the worded pairs' at their positions, a pass for every blank answer."""
    merged = [Verdict(BLANK_ANSWER_SCORE, False)] * count
    for index, verdict in zip(worded, verdicts, strict=True):
        merged[index] = verdict
    return merged


def _detector_from_config(config: AnyDetectorConfig) -> Detector:
    if isinstance(config, RemoteDetectorConfig):
        from protector_models.models.remote import RemoteDetector  # httpx only where a remote detector is used

        return RemoteDetector.from_config(config)
    if isinstance(config, CascadeConfig):
        from protector_models.models.cascade import CascadeDetector

        return CascadeDetector(
            _detector_from_config(config.first), _detector_from_config(config.second), band=config.band
        )
    if isinstance(config, GuardLMConfig):
        from protector_models.models.guard_lm.detector import GuardLMDetector  # torch and transformers

        return GuardLMDetector.from_config(config)
    from protector_models.models.detector import ClassifierDetector  # torch and transformers only where a model loads

    return ClassifierDetector.from_config(config)


def _default_detector() -> Detector:
    return _detector_from_config(ProtectorConfig.from_dict(preset_dict("default")).detector)
