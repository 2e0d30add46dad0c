"""``MLLMProtector``: the guard as a LangChain Runnable, placed after a chat model or wrapped around it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    BaseCallbackManager,
    CallbackManagerForChainRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    RunnableSerializable,
)
from pydantic import ConfigDict, Field, ValidationError, model_validator

from langchain_mllm_protector.messages import (
    NO_QUESTION,
    Answer,
    Question,
    answer_of,
    join_chunks,
    question_of,
    verdict_of,
    with_output,
)
from langchain_mllm_protector.settings import LangChainSettings, distinct_keys, read_yaml, to_yaml
from langchain_mllm_protector.streaming import AsyncClosableStream, ClosableStream, VerifiedRelease, WholeInput
from protector_models import (
    ConfigError,
    HarmfulContentError,
    InvalidInputError,
    Protector,
    ProtectorConfig,
    Result,
    Rewriter,
)
from protector_models.config.schema import Action, describe_validation_error
from protector_models.pairs import text_problem

UNCHECKED_TAG = "mllm_protector:unchecked"
"""Tag on every run inside :meth:`MLLMProtector.wrap` that sees the unchecked answer; exclude it in
``astream_events`` to hide the raw text. Verdict events never carry it (they hold no text)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Item:
    """One parsed input: where the answer sits, and what the detector will read."""

    value: Any
    answer_value: str | AIMessage
    question: Question
    answer: Answer | None  # None: a tool-call-only message, passed through


class MLLMProtector(RunnableSerializable[Any, Any]):
    """Guards model answers: harmful ones are refused or rewritten, benign ones pass byte-for-byte.

    Input, and output of the same type:

    - ``str``, ``AIMessage`` or ``AIMessageChunk``: the answer alone, as in ``prompt | chat_model | guard``.
      The detector sees no question in this form.
    - a dict ``{"question": ..., "answer": ...}`` (keys configurable): the question is a str, a message, a
      list of messages (the last human turn counts) or a prompt value; the dict comes back with the answer
      replaced.

    :meth:`wrap` gives the question-aware form around a chat model. A message keeps its class, id and
    metadata; the verdict goes into ``response_metadata[metadata_key]`` and every verdict is also a custom
    event named ``event_name``. With ``verdict_key`` set, a dict input gets the verdict under that key too, and
    a ``str`` input comes back as ``{answer_key: text, verdict_key: verdict}`` (see :meth:`with_verdict`).
    Messages with tool calls and no text pass untouched unless ``check_tool_calls``. ``threshold`` and
    ``action`` override the protector's: per instance, per call (``invoke(x, threshold=0.9)``, ``.bind``) or
    per config (``configurable_fields``). Models load on first use. Instances hold no per-call state: one
    guard serves concurrent calls.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    protector: Protector = Field(default_factory=Protector, exclude=True)
    """The core protector; ``Protector()`` (the embedded default) when not given."""
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Scores at or above this are flagged; None: the protector's."""
    action: Action | None = None
    """``pass``, ``refuse``, ``detoxify`` or ``raise``; None: the protector's."""
    question_key: str = "question"
    answer_key: str = "answer"
    metadata_key: str = "mllm_protector"
    event_name: str = "mllm_protector"
    check_tool_calls: bool = False
    verdict_key: str | None = Field(None, min_length=1)
    """Where the verdict goes for ``str`` and dict inputs (messages carry it in ``response_metadata``)."""

    def __init__(self, **fields: Any) -> None:
        """Bad settings raise :class:`ConfigError`, worded as for a config file."""
        try:
            super().__init__(**fields)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error, type(self), "invalid MLLMProtector settings")) from None

    @model_validator(mode="after")
    def _valid_settings(self) -> Self:
        distinct_keys(self.question_key, self.answer_key, self.verdict_key)
        return self

    @classmethod
    def from_config(
        cls,
        config: ProtectorConfig | Mapping[str, Any] | str | Path,
        *,
        rewriter: Rewriter | None = None,
        **fields: Any,
    ) -> Self:
        """From a core config (object, mapping, YAML path or preset name); ``fields`` set this class's."""
        return cls(protector=Protector.from_config(config, rewriter=rewriter), **fields)

    @classmethod
    def from_preset(cls, name: str, *, rewriter: Rewriter | None = None, **fields: Any) -> Self:
        """From a named preset of the core (``default``, ``paper-7b``, ...)."""
        return cls.from_config(ProtectorConfig.from_preset(name), rewriter=rewriter, **fields)

    @classmethod
    def from_yaml(cls, path: str | Path, *, rewriter: Rewriter | None = None, **fields: Any) -> Self:
        """From YAML: the core config (flat or under ``protector:``) and an optional ``langchain:`` part."""
        config, settings = read_yaml(path)
        return cls.from_config(config, rewriter=rewriter, **{**settings.model_dump(), **fields})

    @property
    def settings(self) -> LangChainSettings:
        """This guard's adapter settings (the ``langchain:`` YAML section)."""
        return LangChainSettings.model_validate({key: getattr(self, key) for key in LangChainSettings.model_fields})

    def to_yaml(self) -> str:
        """YAML that :meth:`from_yaml` reads back to an equal guard (its Protector must have a config)."""
        config = self.protector.config
        if config is None:
            raise ConfigError("this guard's Protector was built in code, not from a config: it has no YAML")
        overrides = {"threshold": self.threshold, "action": self.action}
        config = config.model_copy(update={key: value for key, value in overrides.items() if value is not None})
        return to_yaml(config, self.settings)

    def with_verdict(self, key: str = "mllm_protector") -> MLLMProtector:
        """This guard with ``verdict_key=key``: ``str`` in, ``{answer_key: text, key: verdict}`` out; a dict input
        gets ``key`` added. The verdict says whether the answer was checked (``checked``) and what was done."""
        return type(self)(**{**dict(self), "verdict_key": key})

    def wrap(self, model: Runnable[Any, Any]) -> Runnable[Any, Any]:
        """The question-aware form: ``model``'s answer, guarded with the last human turn of its input.

        Wrap the chat model itself (``prompt | guard.wrap(chat_model)``) so the input is the conversation.
        The result takes and returns what ``model`` does, with ``batch``, streaming and async. Every step that
        sees the unchecked answer (the model, the step pairing it with the question, the guard's own input) is
        tagged :data:`UNCHECKED_TAG`: ``astream_events(..., exclude_tags=[UNCHECKED_TAG])`` shows only checked
        text, and the verdict events.
        """
        pair = RunnableParallel({self.question_key: RunnablePassthrough(), self.answer_key: model})
        key = self.answer_key

        def answers(chunks: Iterator[Any]) -> Iterator[Any]:  # streams: a RunnableLambda would buffer
            for chunk in chunks:
                if key in chunk:
                    yield chunk[key]

        async def aanswers(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for chunk in chunks:
                if key in chunk:
                    yield chunk[key]

        answer = RunnableGenerator(answers, aanswers, name="answer")
        return RunnableSequence(
            pair.with_config(tags=[UNCHECKED_TAG]),
            self.with_config(tags=[UNCHECKED_TAG]),
            answer,
            name=f"Protected{model.get_name()}",
        )

    # --- Runnable interface ---

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Guard one input; ``threshold=`` and ``action=`` override for this call."""
        return self._call_with_config(self._guard_one, input, config, **_overrides(kwargs))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async :meth:`invoke`; the models run in a worker thread."""
        return await self._acall_with_config(self._aguard_one, input, config, **_overrides(kwargs))

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Guard many inputs with one protector call; each input still gets its own run and event."""
        return self._batch_with_config(
            self._guard, inputs, config, return_exceptions=return_exceptions, **_overrides(kwargs)
        )

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async :meth:`batch`: one protector call, in a worker thread."""
        return await self._abatch_with_config(
            self._aguard, inputs, config, return_exceptions=return_exceptions, **_overrides(kwargs)
        )

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """Yield the checked answer. With the protector's ``streaming.release: verified``, text comes out as the
        detector's windows over it pass and the model's stream is closed at the first flagged one; with ``end``,
        the stream is buffered and the checked (possibly rewritten) answer comes as one chunk."""
        overrides = _overrides(kwargs)
        if self.protector.streaming.release == "end":
            yield from self._transform_stream_with_config(input, self._buffered, config, **overrides)
            return
        source = ClosableStream(input)  # closed by the guard, so that the run's tracing does not drain the model
        yield from self._transform_stream_with_config(source, self._verified, config, source=source, **overrides)

    async def atransform(
        self, input: AsyncIterator[Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async :meth:`transform`."""
        overrides = _overrides(kwargs)
        if self.protector.streaming.release == "end":
            async for chunk in self._atransform_stream_with_config(input, self._abuffered, config, **overrides):
                yield chunk
            return
        source = AsyncClosableStream(input)
        async for chunk in self._atransform_stream_with_config(
            source, self._averified, config, source=source, **overrides
        ):
            yield chunk

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        """The checked answer, as :meth:`transform` releases it."""
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""

        async def single() -> AsyncIterator[Any]:
            yield input

        async for chunk in self.atransform(single(), config, **kwargs):
            yield chunk

    # --- the work: parse, protect once, rebuild ---
    # The signatures follow Runnable's helpers, which pass `run_manager` and `config` by name.

    def _guard_one(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig, **overrides: Any
    ) -> Any:
        return _raise_if_error(self._guard([value], [run_manager], [config], **overrides)[0])

    async def _aguard_one(
        self,
        value: Any,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **overrides: Any,
    ) -> Any:
        return _raise_if_error((await self._aguard([value], [run_manager], [config], **overrides))[0])

    def _buffered(
        self,
        chunks: Iterator[Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        **overrides: Any,
    ) -> Iterator[Any]:
        joined = join_chunks(list(chunks))
        if joined is not None:
            yield self._guard_one(joined, run_manager, config, **overrides)

    async def _abuffered(
        self,
        chunks: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        **overrides: Any,
    ) -> AsyncIterator[Any]:
        joined = join_chunks([chunk async for chunk in chunks])
        if joined is not None:
            yield await self._aguard_one(joined, run_manager, config, **overrides)

    def _verified(
        self,
        chunks: Iterator[Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        source: ClosableStream | None = None,
        threshold: float | None = None,
        action: Action | None = None,
    ) -> Iterator[Any]:
        release = VerifiedRelease(self, *self._effective(threshold, action))
        try:
            for chunk in chunks:
                try:
                    outputs = release.take(chunk)
                except WholeInput:  # a complete message: guarded whole
                    rest = itertools.chain(release.before_answer, [chunk], chunks)
                    yield from self._buffered(rest, run_manager, config, threshold=threshold, action=action)
                    return
                yield from outputs
                if release.done:
                    break
            else:
                yield from release.finish()
        finally:
            if source is not None:
                source.close()  # the model stops generating at a stop (and on any error)
            if release.verdict is not None:
                dispatch_custom_event(self.event_name, release.verdict, config=_verdict_config(config))

    async def _averified(
        self,
        chunks: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        *,
        source: AsyncClosableStream | None = None,
        threshold: float | None = None,
        action: Action | None = None,
    ) -> AsyncIterator[Any]:
        release = VerifiedRelease(self, *self._effective(threshold, action))
        try:
            async for chunk in chunks:
                try:
                    outputs = await release.atake(chunk)
                except WholeInput:
                    rest = _achain([*release.before_answer, chunk], chunks)
                    async for output in self._abuffered(rest, run_manager, config, threshold=threshold, action=action):
                        yield output
                    return
                for output in outputs:
                    yield output
                if release.done:
                    break
            else:
                for output in await release.afinish():
                    yield output
        finally:
            if source is not None:
                await source.aclose()
            if release.verdict is not None:
                await adispatch_custom_event(self.event_name, release.verdict, config=_verdict_config(config))

    def _guard(
        self,
        values: list[Any],
        run_manager: list[CallbackManagerForChainRun],
        config: list[RunnableConfig],
        *,
        threshold: float | None = None,
        action: Action | None = None,
    ) -> list[Any]:
        items = [self._parse(value) for value in values]
        threshold, action = self._effective(threshold, action)
        try:
            results, raised = self.protector.protect(_pairs(items), threshold=threshold, action=action), False
        except HarmfulContentError as error:
            results, raised = error.results, True
        outputs, events = self._rebuild(items, results, threshold, raised)
        for event, item_config in zip(events, config, strict=True):
            if event is not None:
                dispatch_custom_event(self.event_name, event, config=_verdict_config(item_config))
        return outputs

    async def _aguard(
        self,
        values: list[Any],
        run_manager: list[AsyncCallbackManagerForChainRun],
        config: list[RunnableConfig],
        *,
        threshold: float | None = None,
        action: Action | None = None,
    ) -> list[Any]:
        items = [self._parse(value) for value in values]
        threshold, action = self._effective(threshold, action)
        try:
            results = await self.protector.aprotect(_pairs(items), threshold=threshold, action=action)
            raised = False
        except HarmfulContentError as error:
            results, raised = error.results, True
        outputs, events = self._rebuild(items, results, threshold, raised)
        for event, item_config in zip(events, config, strict=True):
            if event is not None:
                await adispatch_custom_event(self.event_name, event, config=_verdict_config(item_config))
        return outputs

    def _parse(self, value: Any) -> _Item | Exception:
        """The question and answer in one input, or the error that says what is wrong with it."""
        try:
            if isinstance(value, Mapping):
                missing = [key for key in (self.question_key, self.answer_key) if key not in value]
                if missing:
                    raise InvalidInputError(
                        f"dict input lacks {', '.join(map(repr, missing))}: it needs {self.question_key!r} "
                        f"(the user's question) and {self.answer_key!r} (the model's answer); got keys "
                        f"{list(value)}. Set question_key= / answer_key= to read other keys"
                    )
                if self.verdict_key is not None and self.verdict_key in value:
                    raise InvalidInputError(
                        f"dict input already has the key {self.verdict_key!r}, where the verdict goes; "
                        "set verdict_key= to a key the input does not use"
                    )
                question = question_of(value[self.question_key], where=f"input[{self.question_key!r}]")
                answer_value = value[self.answer_key]
                where = f"input[{self.answer_key!r}]"
            elif isinstance(value, (str, AIMessage)):
                question, answer_value, where = NO_QUESTION, value, "input"
            else:
                hint = (
                    ": the guard goes after the model (`chat_model | guard`), or use guard.wrap(chat_model)"
                    if isinstance(value, HumanMessage)
                    else ""
                )
                raise InvalidInputError(
                    "MLLMProtector takes a str, an AIMessage / AIMessageChunk, or a dict with "
                    f"{self.question_key!r} and {self.answer_key!r}; got {type(value).__name__}{hint}"
                )
            answer = answer_of(answer_value, check_tool_calls=self.check_tool_calls, where=where)
            for text, name in ((question.text, "the question"), (answer.text if answer else "", where)):
                problem = text_problem(text)
                if problem:
                    raise InvalidInputError(f"{name} is not valid text: {problem}; repair the text first")
        except InvalidInputError as error:
            return error
        return _Item(value, answer_value, question, answer)

    def _rebuild(
        self, items: list[_Item | Exception], results: list[Result], threshold: float, raised: bool
    ) -> tuple[list[Any], list[dict[str, Any] | None]]:
        """Each input's output (or its exception) and event payload (None for inputs that failed to parse)."""
        remaining = iter(results)
        outputs: list[Any] = []
        events: list[dict[str, Any] | None] = []
        for item in items:
            if isinstance(item, Exception):
                outputs.append(item)
                events.append(None)
            elif item.answer is None:
                outputs.append(item.value)
                events.append({"action": "skipped", "checked": False, "reason": "tool calls without text"})
            else:
                result = next(remaining)
                verdict = verdict_of(result, item.question, item.answer, threshold)
                events.append(verdict)
                if raised and result.flagged:
                    outputs.append(HarmfulContentError([result]))
                    continue
                outputs.append(self._output(item, result, verdict))
        return outputs, events

    def _output(self, item: _Item, result: Result, verdict: dict[str, Any]) -> Any:
        """The input rebuilt around the protector's output, with the verdict where the caller can see it."""
        answer = with_output(item.answer_value, result, verdict, metadata_key=self.metadata_key)
        if self.verdict_key is not None and isinstance(item.value, (str, Mapping)):
            base = item.value if isinstance(item.value, Mapping) else {}
            return {**base, self.answer_key: answer, self.verdict_key: verdict}
        if not result.checked and isinstance(answer, str):
            logger.warning(
                "mllm-protector passed on an answer it could not check (%s) in a str, which carries no verdict; "
                "set verdict_key= (or guard.with_verdict()) or pass an AIMessage to receive the verdict",
                result.error,
            )
        if isinstance(item.value, Mapping):
            return {**item.value, self.answer_key: answer}
        return answer

    def _effective(self, threshold: float | None, action: Action | None) -> tuple[float, Action]:
        if threshold is None:
            threshold = self.threshold if self.threshold is not None else self.protector.threshold
        if action is None:
            action = self.action if self.action is not None else self.protector.action
        return threshold, action


def _pairs(items: list[_Item | Exception]) -> list[tuple[str, str]]:
    """The (question, answer) texts to judge, in input order, leaving out failed and passed-through inputs."""
    return [
        (item.question.text, item.answer.text) for item in items if isinstance(item, _Item) and item.answer is not None
    ]


def _overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Per-call ``threshold`` / ``action``; anything else is a mistake worth naming."""
    unknown = sorted(set(kwargs) - {"threshold", "action"})
    if unknown:
        raise TypeError(f"MLLMProtector got unexpected keyword arguments {unknown}; it takes threshold= and action=")
    return {"threshold": kwargs.get("threshold"), "action": kwargs.get("action")}


def _verdict_config(config: RunnableConfig) -> RunnableConfig:
    """``config`` without :data:`UNCHECKED_TAG`: a verdict holds no text, so excluding that tag keeps it."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        callbacks = callbacks.copy()
        callbacks.remove_tags([UNCHECKED_TAG])
    tags = [tag for tag in config.get("tags") or [] if tag != UNCHECKED_TAG]
    return {**config, "tags": tags, "callbacks": callbacks}


async def _achain(first: list[Any], rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    for item in first:
        yield item
    async for item in rest:
        yield item


def _raise_if_error(output: Any) -> Any:
    if isinstance(output, Exception):
        raise output
    return output
