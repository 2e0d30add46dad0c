"""LangChain values <-> the core's text: the question a user asked, the answer a model gave, and back.

Pure functions, no state: the runnable, the wrapper and the middleware all read and write messages here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue

from protector_models import InvalidInputError, Result

READ_BLOCKS = frozenset({"text", "tool_call", "tool_call_chunk", "invalid_tool_call"})
"""Content block types the guard reads (tool calls with ``check_tool_calls``); any other block, media or
reasoning, is reported as unchecked in the verdict."""


WITHHELD_KWARGS = frozenset({"reasoning_content", "tool_calls", "function_call"})
"""``additional_kwargs`` a replaced answer loses: the reasoning behind it and the provider's raw tool calls."""


@dataclass(frozen=True, slots=True)
class Question:
    """The text of the user's last turn, and how many images came with it."""

    text: str
    images: int = 0
    known: bool = True
    """False when the guard saw only the answer (``chat_model | MLLMProtector()``)."""


NO_QUESTION = Question("", 0, known=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """The text the detector judges, and the other content blocks (media, reasoning, ...) it does not read."""

    text: str
    media: tuple[str, ...] = ()
    with_tool_calls: bool = False


def question_of(value: Any, *, where: str = "question") -> Question:
    """The question in ``value``: a str, a message, a message list (its last human turn) or a prompt value.

    A human message's text blocks are joined; its image blocks are counted (read through ``content_blocks``).
    A conversation with no human turn gives an empty question.
    """
    if isinstance(value, str):
        return Question(value)
    if isinstance(value, BaseMessage):
        return _message_question(value)
    if isinstance(value, PromptValue):
        return _last_human(value.to_messages())
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        try:
            messages = convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError) as error:
            raise InvalidInputError(f"{where}: cannot read a list of messages from it: {error}") from None
        return _last_human(messages)
    raise InvalidInputError(
        f"{where} must be text (str), a message, a list of messages or a prompt value; got {_kind(value)}. "
        "When wrapping, wrap the chat model itself: `prompt | guard.wrap(chat_model)`"
    )


def answer_of(value: Any, *, check_tool_calls: bool = False, where: str = "answer") -> Answer | None:
    """The answer's text; None for a message that only calls tools (passed through untouched by default).

    With ``check_tool_calls`` the calls' names and arguments (JSON) are appended to the text and judged too, the
    invalid calls (arguments that did not parse) as well.
    """
    if isinstance(value, str):
        return Answer(value)
    if not isinstance(value, AIMessage):  # AIMessageChunk is an AIMessage
        hint = " (the user's turn is the question, not the answer)" if isinstance(value, HumanMessage) else ""
        raise InvalidInputError(
            f"{where} must be the model's answer: str, AIMessage or AIMessageChunk; got {_kind(value)}{hint}"
        )
    text = str(value.text)
    media = tuple(block["type"] for block in value.content_blocks if block["type"] not in READ_BLOCKS)
    calls = [*value.tool_calls, *value.invalid_tool_calls]  # an invalid call's args are its raw text
    if calls and check_tool_calls:
        described = "\n".join(json.dumps({"name": c["name"], "args": c["args"]}, sort_keys=True) for c in calls)
        return Answer(f"{text}\n{described}" if text else described, media, with_tool_calls=True)
    if calls and not text.strip():
        return None
    if media and not text.strip():
        raise InvalidInputError(
            f"{where} has no text to check, only {', '.join(media)} content; MLLMProtector judges text. "
            "Give the guard the model's text (drop the other blocks first) or guard them elsewhere"
        )
    return Answer(text, media)


def with_output(value: str | AIMessage, result: Result, verdict: dict[str, Any], *, metadata_key: str) -> Any:
    """``value`` of the same type, its text replaced only when the protector changed it.

    A message keeps its class, id and metadata; the verdict goes into ``response_metadata[metadata_key]``.
    A replaced message's content becomes the output text (non-text blocks dropped, and the reasoning a provider
    put in ``additional_kwargs["reasoning_content"]``) and loses its tool calls, also the provider's raw ones in
    ``additional_kwargs`` (which langchain-openai sends back when ``tool_calls`` is empty): a withheld turn acts
    on nothing.
    """
    if isinstance(value, str):
        return result.output if result.changed else value
    update: dict[str, Any] = {"response_metadata": {**value.response_metadata, metadata_key: verdict}}
    if result.changed:
        update["content"] = result.output
        update["additional_kwargs"] = {k: v for k, v in value.additional_kwargs.items() if k not in WITHHELD_KWARGS}
        update["tool_calls"] = []
        update["invalid_tool_calls"] = []
        if isinstance(value, AIMessageChunk):
            update["tool_call_chunks"] = []
    return value.model_copy(update=update)


def verdict_of(result: Result, question: Question, answer: Answer, threshold: float) -> dict[str, Any]:
    """The JSON-ready record of one decision, for ``response_metadata`` and the custom event.

    It never holds the texts (the original answer may be harmful): only scores, the action and the context.
    """
    return {
        "harm_score": result.harm_score,
        "flagged": result.flagged,
        "action": result.action,
        "categories": dict(result.categories),
        "decided_by": result.decided_by,
        "changed": result.changed,
        "checked": result.checked,
        "error": result.error,
        "threshold": threshold,
        "saw_question": question.known,
        "question_images": question.images,
        "unchecked_media": list(answer.media),
        "judged_tool_calls": answer.with_tool_calls,
        "detect_ms": round(result.detect_ms, 3),
        "rewrite_ms": round(result.rewrite_ms, 3),
    }


def join_chunks(chunks: Sequence[Any]) -> Any:
    """Join a buffered stream: text and message chunks add up; dict chunks merge key by key."""
    joined: Any = None
    for chunk in chunks:
        if joined is None:
            joined = dict(chunk) if isinstance(chunk, Mapping) else chunk
            continue
        try:
            if isinstance(joined, dict) and isinstance(chunk, Mapping):
                for key, part in chunk.items():
                    joined[key] = joined[key] + part if key in joined else part
            elif isinstance(joined, BaseMessage) and not isinstance(joined, AIMessageChunk):
                raise TypeError("a stream of complete messages cannot be joined")  # BaseMessage + makes a prompt
            else:
                joined = joined + chunk
        except TypeError as error:
            raise InvalidInputError(
                f"cannot join the streamed input ({_kind(joined)} then {_kind(chunk)}): {error}. "
                "Stream str chunks, AIMessageChunk chunks, or dicts of them"
            ) from None
    return joined


def _message_question(message: BaseMessage) -> Question:
    blocks = message.content_blocks
    images = sum(1 for block in blocks if block["type"] == "image")
    return Question(str(message.text), images)


def _last_human(messages: Sequence[BaseMessage]) -> Question:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return _message_question(message)
    return Question("")


def _kind(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
