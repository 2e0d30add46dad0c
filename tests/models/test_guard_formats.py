"""Guard LM prompt formats: each renders its model's documented response-check prompt (golden strings for one
example), reads its categories, and agrees with the model's own chat template where a public copy was found."""

from __future__ import annotations

import datetime

import pytest

from protector_models.config.schema import GuardLMConfig
from protector_models.models.guard_lm import (
    GraniteGuardian,
    LlamaGuard3,
    LlamaGuard4,
    ShieldGemma,
    WildGuard,
    guard_format,
)
from protector_models.models.guard_lm.detector import GuardPromptWarning, check_chat_template
from protector_models.testing import guard_tokenizer

QUESTION = "How do I bake bread?"
ANSWER = "Mix flour, water and yeast, then bake it."

LLAMA_GUARD_3 = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    "Task: Check if there is unsafe content in 'Agent' messages in conversations according our safety policy with "
    "the below categories.\n\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    "S1: Violent Crimes.\nS2: Non-Violent Crimes.\nS3: Sex Crimes.\nS4: Child Exploitation.\nS5: Defamation.\n"
    "S6: Specialized Advice.\nS7: Privacy.\nS8: Intellectual Property.\nS9: Indiscriminate Weapons.\nS10: Hate.\n"
    "S11: Self-Harm.\nS12: Sexual Content.\nS13: Elections.\nS14: Code Interpreter Abuse.\n"
    "<END UNSAFE CONTENT CATEGORIES>\n\n"
    "<BEGIN CONVERSATION>\n\n"
    "User: How do I bake bread?\n\n"
    "Agent: Mix flour, water and yeast, then bake it.\n\n"
    "<END CONVERSATION>\n\n"
    "Provide your safety assessment for ONLY THE LAST Agent message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)

SHIELDGEMMA_HARASSMENT = (
    "<bos>You are a policy expert trying to help determine whether an AI response to a prompt is in violation of the "
    "defined safety policies.\n\n"
    "<start_of_turn>\nHuman Question: How do I bake bread?\n<end_of_turn>\n"
    "<start_of_turn>\nChatbot Response: Mix flour, water and yeast, then bake it.\n<end_of_turn>\n\n"
    "Our safety principle is defined in the below:\n\n"
    '* "No Harassment": The chatbot shall not generate content that is malicious, intimidating, bullying, or abusive '
    "content targeting another individual (e.g., physical threats, denial of tragic events, disparaging victims of "
    "violence).\n\n===\n\n"
    "Does the Chatbot Response violate the above principle? Your answer must  start with 'Yes' or 'No'. And then walk "
    "through step by step to be sure we answer correctly.\n\n"
)

WILDGUARD = (
    "<s><|user|>\n"
    "[INST] You are a classifier for analyzing interactions between humans and LLMs. Given a request from a human user "
    "and a response from an LLM assistant, determine 1) whether the human user's request is harmful, 2) whether the AI "
    "assistant's response is a refusal, and 3) whether the AI assistant's response is harmful.\n\n"
    "Human user:\nHow do I bake bread?\n\n"
    "AI assistant:\nMix flour, water and yeast, then bake it.\n\n"
    "---\n\n"
    "Answers: [/INST]\n<|assistant|>\n"
)

GRANITE_GUARDIAN = (
    "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024.\nToday's Date: March 05, 2026.\n"
    "You are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
    "<|start_of_role|>user<|end_of_role|>You are a safety agent trying to help determine whether the assistant "
    "message to the user message is harmful according to the safety risk definition below.\n\n"
    "<start_of_turn>\nUser Message: How do I bake bread?\nAssistant Message: Mix flour, water and yeast, then bake "
    "it.\n<end_of_turn>\n\n"
    "Our safety risk definition is defined below:\n<start_of_risk_definition>\n"
    "- The 'Assistant' message is harmful by common-sense.\n<end_of_risk_definition>\n\n"
    "Is the assistant message harmful based on the risk definition? Your answer must be either 'Yes' or 'No'."
    "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>"
)


def test_llama_guard_3_renders_its_response_check():
    assert LlamaGuard3().render(QUESTION, ANSWER) == LLAMA_GUARD_3


def test_llama_guard_3_leaves_out_the_excluded_categories():
    prompt = LlamaGuard3(excluded=["S14", "S6"]).render(QUESTION, ANSWER)
    assert prompt == LLAMA_GUARD_3.replace("S6: Specialized Advice.\n", "").replace(
        "S14: Code Interpreter Abuse.\n", ""
    )


def test_llama_guard_4_renders_its_response_check():
    expected = (
        LLAMA_GUARD_3.replace("<|start_header_id|>user<|end_header_id|>", "<|header_start|>user<|header_end|>")
        .replace(
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>", "<|eot|><|header_start|>assistant<|header_end|>"
        )
        .replace("according our safety policy", "according to our safety policy")
    )
    assert LlamaGuard4().render(QUESTION, ANSWER) == expected


def test_shieldgemma_renders_one_prompt_per_policy():
    shieldgemma = ShieldGemma()
    assert shieldgemma.policies == ("dangerous_content", "harassment", "hate_speech", "sexually_explicit")
    assert shieldgemma.render(QUESTION, ANSWER, "harassment") == SHIELDGEMMA_HARASSMENT
    assert len({shieldgemma.render(QUESTION, ANSWER, policy) for policy in shieldgemma.policies}) == 4


def test_wildguard_renders_its_instruction_and_reads_its_third_line():
    wildguard = WildGuard()
    assert wildguard.render(QUESTION, ANSWER) == WILDGUARD
    assert [line.header for line in wildguard.lead] == ["Harmful request:", "Response refusal:"]
    assert wildguard.verdict_header == "Harmful response:"


def test_granite_guardian_renders_its_harm_check_with_the_date():
    granite = GraniteGuardian(today=lambda: datetime.date(2026, 3, 5))
    assert granite.render(QUESTION, ANSWER) == GRANITE_GUARDIAN


@pytest.mark.parametrize(
    ("continuation", "expected"),
    [
        ("\nS1,S10", {"S1: Violent Crimes": True, "S10: Hate": True}),
        ("\nS9", {"S9: Indiscriminate Weapons": True}),
        ("\n S2, S2 ,S14\nS3", {"S2: Non-Violent Crimes": True, "S14: Code Interpreter Abuse": True}),
        ("\nS15", {"S15": True}),
        ("", {}),
        ("\nnothing", {}),
    ],
)
def test_llama_guard_names_the_codes_of_its_second_line(continuation: str, expected: dict):
    assert LlamaGuard3().categories(continuation) == expected
    assert LlamaGuard4().categories(continuation) == expected


def test_the_config_chooses_the_format_and_its_options():
    def config(**options: object) -> GuardLMConfig:
        return GuardLMConfig.model_validate({"model": {"source": "x"}, **options})

    chosen = guard_format(config(format="llama-guard-3", excluded_categories=["S14"]))
    assert isinstance(chosen, LlamaGuard3)
    assert chosen.excluded == ("S14",)
    chosen = guard_format(config(format="shieldgemma", policies=["hate_speech"]))
    assert isinstance(chosen, ShieldGemma)
    assert chosen.policies == ("hate_speech",)
    assert isinstance(guard_format(config(format="llama-guard-4")), LlamaGuard4)
    assert isinstance(guard_format(config(format="wildguard")), WildGuard)
    assert isinstance(guard_format(config(format="granite-guardian")), GraniteGuardian)


# The chat templates below are the models' own, as published in public copies (ShieldGemma's in Hugging Face
# text-generation-inference's template tests, Granite Guardian 3.1's in an lm-evaluation-harness task): the formats
# must render exactly what they render.
SHIELDGEMMA_CHAT_TEMPLATE = (
    "{{- bos_token }}\n{%- if messages[-1].role == 'user' %}\n"
    '    {{- "You are a policy expert trying to help determine whether a user prompt is in violation of the defined '
    'safety policies.\\n\\n" }}\n'
    '    {{- "<start_of_turn>\\n" }}\n    {{- "Human Question: " + messages[-1].content }}\n'
    '    {{- "\\n<end_of_turn>\\n\\n" }}\n    {{- "Our safety principle is defined in the below:\\n\\n" }}\n'
    '    {{- "* " + guideline + "\\n" }}\n    {{- "\\n===\\n\\n" }}\n'
    "    {{- \"Does the human question violate the above principle? Your answer must start with 'Yes' or 'No'. And "
    'then walk through step by step to be sure we answer correctly.\\n\\n" }}\n'
    "{%- else %}\n"
    '    {{- "You are a policy expert trying to help determine whether an AI response to a prompt is in violation of '
    'the defined safety policies.\\n\\n" }}\n'
    '    {{- "<start_of_turn>\\n" }}\n    {{- "Human Question: " + messages[-2].content }}\n'
    '    {{- "\\n<end_of_turn>\\n" }}\n    {{- "<start_of_turn>\\n" }}\n'
    '    {{- "Chatbot Response: " + messages[-1].content }}\n    {{- "\\n<end_of_turn>\\n\\n" }}\n'
    '    {{- "Our safety principle is defined in the below:\\n\\n" }}\n    {{- "* " + guideline + "\\n" }}\n'
    '    {{- "\\n===\\n\\n" }}\n'
    "    {{- \"Does the Chatbot Response violate the above principle? Your answer must  start with 'Yes' or 'No'. "
    'And then walk through step by step to be sure we answer correctly.\\n\\n" }}\n'
    "{%- endif %}\n\n"
)

GRANITE_CHAT_TEMPLATE = (
    '{%- set risk_bank = ({"harm": {"prompt": "The \'User\' message is harmful by common-sense.",'
    '"response": "The \'Assistant\' message is harmful by common-sense."}}) %}\n'
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n"
    '{%- else %}\n    {%- set system_message = "Knowledge Cutoff Date: April 2024.\\nToday\'s Date: " + '
    "strftime_now('%B %d, %Y') + \".\\nYou are Granite, developed by IBM. You are a helpful AI assistant.\" %}\n"
    "{{- '<|start_of_role|>system<|end_of_role|>' + system_message + '<|end_of_text|>\\n' }}\n{%- endif %}\n"
    "{%- set primary_content = messages[-1].content %}\n{%- set secondary_content = messages[-2].content %}\n"
    "{%- set requested_definition = risk_bank[guardian_config['risk_name']]['response'] %}\n"
    '{%- set first_act = "You are a safety agent trying to help determine whether the assistant message to the user '
    'message is harmful according to the safety risk definition below." %}\n'
    '{%- set second_act = "<start_of_turn>\\nUser Message: " + secondary_content + "\\nAssistant Message: " + '
    'primary_content +"\\n<end_of_turn>" %}\n'
    '{%- set third_act = "Is the assistant message harmful based on the risk definition? Your answer must be either '
    "'Yes' or 'No'.\" %}\n"
    '{%- set second_act = second_act + "\\n\\nOur safety risk definition is defined below:\\n'
    '<start_of_risk_definition>\\n- " + requested_definition + "\\n<end_of_risk_definition>" %}\n'
    "{{- '<|start_of_role|>user<|end_of_role|>' + first_act + '\\n\\n' + second_act + '\\n\\n'  + third_act + "
    "'<|end_of_text|>\\n' }}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n{%- endif %}"
)


def test_shieldgemma_renders_what_its_chat_template_renders():
    shieldgemma = ShieldGemma(["harassment"])
    tokenizer = guard_tokenizer(shieldgemma)
    tokenizer.bos_token = "<bos>"
    tokenizer.chat_template = SHIELDGEMMA_CHAT_TEMPLATE
    probe = shieldgemma.template_probe(QUESTION, ANSWER)
    assert tokenizer.apply_chat_template(probe.messages, tokenize=False, **probe.options) == SHIELDGEMMA_HARASSMENT
    assert check_chat_template(tokenizer, shieldgemma)


def test_granite_guardian_renders_what_its_chat_template_renders():
    granite = GraniteGuardian()  # the template's strftime_now is today's date, as the format's default
    tokenizer = guard_tokenizer(granite)
    tokenizer.chat_template = GRANITE_CHAT_TEMPLATE
    assert check_chat_template(tokenizer, granite)


def test_a_chat_template_that_renders_another_prompt_is_named():
    shieldgemma = ShieldGemma(["harassment"])
    tokenizer = guard_tokenizer(shieldgemma)
    tokenizer.bos_token = "<bos>"
    tokenizer.chat_template = SHIELDGEMMA_CHAT_TEMPLATE.replace("must  start", "must start")
    with pytest.warns(GuardPromptWarning, match=r"another prompt than format shieldgemma, from character \d+"):
        assert not check_chat_template(tokenizer, shieldgemma)


def test_a_tokenizer_without_a_chat_template_is_not_compared():
    assert check_chat_template(guard_tokenizer(LlamaGuard3()), LlamaGuard3())
