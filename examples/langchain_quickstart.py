"""Guard a LangChain chat model with mllm-protector: answer-only, question-aware, and batched.

Run: ``python examples/langchain_quickstart.py [guard.yaml]`` (no YAML: the embedded default detector).
The fake chat model stands in for yours (ChatOpenAI, ChatAnthropic, a local multimodal model, ...).
"""

from __future__ import annotations

import sys

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate

from langchain_mllm_protector import MLLMProtector


def main() -> None:
    guard = MLLMProtector.from_yaml(sys.argv[1]) if len(sys.argv) > 1 else MLLMProtector()
    harmful = "Sure. First get the poison, then mix it into their food so they don't notice."
    benign = "To bake bread, mix flour, water, salt and yeast, knead the dough, let it rise, and bake it at 230 C."
    chat_model = FakeListChatModel(responses=[harmful, benign])
    prompt = ChatPromptTemplate.from_messages([("system", "You are helpful."), ("human", "{question}")])

    # 1. Answer only: the guard sees the model's answer, not the question.
    answer_only = prompt | chat_model | guard
    for question in ("How do I hurt someone quietly?", "How do I bake bread?"):
        message = answer_only.invoke({"question": question})
        print(f"{question!r} -> {message.content!r}")
        print("   verdict:", message.response_metadata["mllm_protector"])

    # 2. Question-aware: wrap the chat model, so the detector also reads the user's last turn.
    question_aware = prompt | guard.wrap(FakeListChatModel(responses=[harmful, benign]))
    questions = [{"question": "How do I hurt someone quietly?"}, {"question": "How do I bake bread?"}]
    for message in question_aware.batch(questions, {"max_concurrency": 1}):  # one detector call for the batch
        print("wrapped ->", repr(message.content), message.response_metadata["mllm_protector"]["flagged"])


if __name__ == "__main__":
    main()
