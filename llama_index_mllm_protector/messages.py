"""Chat messages to questions: the text is the question, images are counted; chat memory repair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.memory import BaseMemory

from protector_models import InvalidInputError


@dataclass(frozen=True, slots=True)
class UserTurn:
    """What the inner chat engine receives (``message``), and what the detector sees as the question."""

    message: str
    question: str
    images: int


def user_turn(message: str | ChatMessage, chat_history: Sequence[ChatMessage] | None) -> UserTurn:
    """The turn's text and images: the message, after any user messages that end ``chat_history``.

    LlamaIndex chat engines take the message as text, so images reach them in ``chat_history`` (for example a
    user message with an ``ImageBlock`` just before the text); their text joins the question and they count.
    """
    if isinstance(message, ChatMessage):
        if image_count(message):
            raise InvalidInputError(
                "chat engines take the message as text, so its images would be lost; put the message with "
                "its ImageBlocks at the end of chat_history and send its question as the message"
            )
        text = message.content or ""
    elif isinstance(message, str):
        text = message
    else:
        raise InvalidInputError(f"message must be a str or a ChatMessage, got {type(message).__name__}")
    trailing = _trailing_user_messages(chat_history or [])
    texts = [t for m in trailing if (t := m.content or "").strip()]
    return UserTurn(text, "\n".join([*texts, text]), sum(image_count(m) for m in trailing))


def image_count(message: ChatMessage) -> int:
    """How many ``ImageBlock``s a message carries."""
    return sum(isinstance(block, ImageBlock) for block in message.blocks)


def replace_last_answer(messages: Sequence[ChatMessage], original: str, output: str) -> list[ChatMessage] | None:
    """``messages`` with the last assistant answer swapped for ``output``; None unless it is ``original``."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role != MessageRole.ASSISTANT:
            continue
        if (message.content or "").strip() != original.strip():
            return None
        fixed = ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[TextBlock(text=output)],
            additional_kwargs=message.additional_kwargs,
        )
        return [*messages[:index], fixed, *messages[index + 1 :]]
    return None


def memory_of(engine: object) -> BaseMemory | None:
    """The chat memory of a LlamaIndex chat engine (``_memory`` in the core engines), if it has one."""
    for name in ("_memory", "memory"):
        memory = getattr(engine, name, None)
        if isinstance(memory, BaseMemory):
            return memory
    return None


def _trailing_user_messages(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    for message in history:
        if not isinstance(message, ChatMessage):
            raise InvalidInputError(f"chat_history must hold ChatMessage objects, got {type(message).__name__}")
    trailing: list[ChatMessage] = []
    for message in reversed(history):
        if message.role != MessageRole.USER:
            break
        trailing.insert(0, message)
    return trailing
