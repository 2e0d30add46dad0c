"""Short chat turns: greetings, thanks, acknowledgements, clarifying questions, farewells and one-line replies,
all benign, shown alone, after ordinary questions and after harmful ones, so that a terse harmless turn is not
learnt as harm and a harmful question alone does not make an answer harmful.

The turns are composed from the phrase lists below (several languages, casings and punctuations), written for
this generator and kept apart from the hand-written regression set. After a harmful question only content-free
turns are used (a greeting, thanks, "Sure!", a clarifying question): a "Yes." or "Go ahead." there could read as
encouragement, which is harm. After a harmful request most turns are ready replies ("Sure!", "Of course.") with
nothing after them: jailbroken answers open the same way and go on to the harm, and only the harm may decide.
"""

# ruff: noqa: RUF001  (phrases in other scripts: Cyrillic letters, full-width question marks)
from __future__ import annotations

import random
import re
from collections.abc import Sequence

from protector_models.data.labelled import LabelledPair

CHAT_TURNS_SOURCE = "chat_turns"
"""The ``source`` of every generated turn (source balancing treats them as one source)."""

GREETINGS = (
    "Hi", "Hello", "Hey", "Hey there", "Hi there", "Hello again", "Good morning", "Good afternoon", "Good evening",
    "Howdy", "Greetings", "Hiya", "Morning", "Heya", "Bonjour", "Salut", "Hola", "Buenas", "Buenos días", "Hallo",
    "Guten Tag", "Moin", "Ciao", "Buongiorno", "Olá", "Oi", "Bom dia", "Hoi", "Goedemorgen", "Hej", "Namaste",
    "Merhaba", "Cześć", "Привет", "Здравствуйте", "こんにちは", "你好", "안녕하세요", "Γεια σας", "Xin chào",
)  # fmt: skip
OPENINGS = (
    "How can I help you today?", "What can I do for you?", "How are you?", "Nice to hear from you.",
    "What's on your mind?", "How's it going?", "What would you like to talk about?", "Good to see you.",
    "How can I help?", "What brings you here?", "How are you doing today?", "Ready when you are.",
    "Comment puis-je vous aider ?", "Ça va ?", "¿En qué puedo ayudarte?", "¿Qué tal?", "Wie kann ich helfen?",
    "Wie geht's?", "Come posso aiutarti?", "Como posso ajudar?", "Waarmee kan ik je helpen?", "Чем могу помочь?",
    "何かお手伝いできますか？", "有什么可以帮你的吗？",
)  # fmt: skip
THANKS = (
    "Thanks", "Thank you", "Thanks a lot", "Thank you so much", "Many thanks", "Cheers", "Much appreciated",
    "Thanks a bunch", "Thanks, that helps", "Thank you kindly", "Ta", "Thx", "Merci", "Merci beaucoup", "Gracias",
    "Muchas gracias", "Danke", "Danke schön", "Vielen Dank", "Grazie", "Grazie mille", "Obrigado", "Obrigada",
    "Dank je wel", "Tack", "Dziękuję", "Спасибо", "ありがとう", "谢谢", "감사합니다", "Teşekkürler",
)  # fmt: skip
WELCOMES = (
    "You're welcome", "No problem", "Happy to help", "Anytime", "My pleasure", "Glad I could help",
    "Don't mention it", "Glad it was useful", "No worries at all", "Anytime at all", "De rien",
    "Avec plaisir", "De nada", "Con gusto", "Gern geschehen", "Bitte schön", "Prego", "Di niente", "Por nada",
    "Graag gedaan", "Не за что", "どういたしまして", "不客气",
)  # fmt: skip
ACKNOWLEDGEMENTS = (
    "Sure", "OK", "Okay", "Ok", "Got it", "Alright", "All right", "Sounds good", "Will do", "Of course", "Certainly",
    "No worries", "Understood", "Noted, thanks", "Fair enough", "Makes sense", "I see", "Right", "Cool", "Great",
    "Perfect", "Gotcha", "Roger that", "Sure thing", "Okie", "Yup, got it", "Oh, I see", "Ah, okay", "Hmm, okay",
    "D'accord", "Entendu", "Vale", "Claro", "Entendido", "Verstanden", "Alles klar", "Va bene", "Capito", "Certo",
    "Beleza", "Prima", "Понял", "わかりました", "好的", "알겠습니다",
)  # fmt: skip
READY_REPLIES = (
    "Sure", "Sure!", "Sure thing", "Of course", "Certainly", "Absolutely", "Okay", "OK, sure", "Yes, sure",
    "Sure, I can do that", "Sure, happy to", "Sure, one moment", "Of course, one second", "Sure, let me see",
    "Okay, let me think", "Right away", "Coming up", "With pleasure", "Sure, no problem", "Alright, sure",
    "Bien sûr", "Volontiers", "Claro", "Por supuesto", "Natürlich", "Klar", "Certo", "Certamente", "Claro que sim",
    "Natuurlijk", "Självklart", "Oczywiście", "Конечно", "もちろん", "当然可以", "물론이죠", "Tabii ki",
)  # fmt: skip
"""Replies that agree to a request and give nothing: most turns after a harmful request (not after a yes/no one)."""
FOLLOW_UPS = (
    "What do you need help with?", "Let me know what you need.", "What would you like me to do?",
    "What should I start with?", "Tell me more about what you need.", "What are you looking for exactly?",
    "Let me know if there's anything else.", "Anything else I can do?", "Is there anything else?",
    "Just say the word.", "I'm here if you need anything.", "What else is on your mind?",
)  # fmt: skip
CLARIFICATIONS = (
    "What do you mean?", "Could you clarify?", "Can you say more?", "What exactly are you asking?",
    "Can you give me more context?", "Which one do you mean?", "Could you rephrase that?",
    "I'm not sure I follow. Could you explain?", "Sorry, I didn't catch that.", "What is this for?",
    "Can you be more specific?", "Sorry, what do you mean by that?", "Could you give me an example?",
    "What's the context here?", "Who is this for?", "I don't understand the question.",
    "Qu'est-ce que vous voulez dire ?", "Pouvez-vous préciser ?", "¿Qué quieres decir?", "¿Puedes explicarlo mejor?",
    "Was meinst du damit?", "Kannst du das genauer erklären?", "Cosa intendi?", "O que você quer dizer?",
    "Wat bedoel je?", "Что вы имеете в виду?", "どういう意味ですか？", "你是什么意思？",
)  # fmt: skip
FAREWELLS = (
    "Bye", "Goodbye", "See you", "See you later", "Take care", "Have a nice day", "Good night", "Talk soon",
    "Have a good one", "Catch you later", "Bye for now", "Au revoir", "À bientôt", "Adiós", "Hasta luego",
    "Tschüss", "Bis später", "Arrivederci", "A presto", "Tchau", "Até logo", "Doei", "Hej då", "До свидания",
    "さようなら", "再见",
)  # fmt: skip
SMALL_TALK = (
    "I'm doing well, thanks for asking.", "Not much, just here to help.", "Hmm, let me think about that.",
    "Good question!", "Interesting.", "Haha, fair point.", "That's a fun one.", "I'm not sure, to be honest.",
    "I don't know.", "Hard to say.", "One moment, please.", "Let me check.", "Here you go.", "Done!",
    "No idea, sorry.", "Ha, nice.", "Oh, interesting!", "That makes two of us.", "Je ne sais pas.", "No lo sé.",
    "Keine Ahnung.", "Non lo so.", "Não sei.",
)  # fmt: skip
SHORT_ANSWERS = (
    "Yes.", "No.", "Yeah.", "Nope.", "It is, yes.", "No, it isn't.", "Definitely.", "Not really.", "Probably not.",
    "I think so.", "I don't think so.", "Exactly.", "Correct.", "That's right.", "Close, but not quite.",
    "Absolutely.", "Maybe.", "Sometimes.", "It depends.", "Usually, yes.", "Oui.", "Non.", "Sí.", "Ja.", "Nein.",
    "Sì.", "Sim.", "Não.", "Да.", "Нет.", "はい。", "是的。",
)  # fmt: skip
"""Replies to a yes/no question: only after benign questions."""
CHAT_QUESTIONS = (
    "hi", "Hello!", "hey", "Good morning", "How are you?", "Are you there?", "Thanks!", "thank you", "ok",
    "Can you help me?", "I have a question.", "Say something.", "Greet me.", "Who are you?", "What's up?",
    "bye", "Got a minute?", "Quick question", "Can I ask you something?", "Hola", "Bonjour", "Hallo",
)  # fmt: skip
"""Chat-like user turns, a third of the questions of turns that follow no data row."""

_ENDINGS = ("", ".", "!", "!!", "!!!", " :)", " :-)", " 😊", " 🙂", " 👍", "~", "...", " !", " <3")
_SELF_HARM = re.compile(r"\b(kill|hurt|cut|harm|starv\w*|end)\s+(my\s*self|myself|my life)\b|\bsuicid", re.IGNORECASE)
_YES_NO_START = re.compile(
    r"^\s*(should|shall|is it|isn't it|am i|can i|could i|would it|would you|do you think|will it|may i)\b",
    re.IGNORECASE,
)


def chat_turn_examples(examples: Sequence[LabelledPair], share: float, seed: int) -> list[LabelledPair]:
    """``share * len(examples)`` benign short turns: a third alone, a third after a question of a benign row (or a
    chat-like question), a third after a question of a harmful row. Empty when ``share`` is 0."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"chat_turns must be within [0, 1], got {share}")
    count = round(share * len(examples))
    generator = random.Random(f"{seed}:chat-turns")
    benign_questions = sorted({e.question for e in examples if not e.harmful and e.question.strip()})
    harmful_questions = sorted({e.question for e in examples if e.harmful and e.question.strip()})
    requests = {q for q in harmful_questions if not _asks_yes_or_no(q)}
    turns = []
    for index in range(count):
        place = index % 3
        if place == 1 and benign_questions and generator.random() < 2 / 3:
            question, turn = generator.choice(benign_questions), _turn(generator, after_benign_question=True)
        elif place == 1:
            question, turn = generator.choice(CHAT_QUESTIONS), _turn(generator, after_benign_question=True)
        elif place == 2 and harmful_questions:
            question = generator.choice(harmful_questions)
            turn = _turn(generator, after_benign_question=False, harmful_request=question in requests)
        else:
            question, turn = "", _turn(generator, after_benign_question=False, request=True)
        turns.append(LabelledPair(question, turn, False, CHAT_TURNS_SOURCE))
    return turns


def _turn(
    generator: random.Random, *, after_benign_question: bool, request: bool = False, harmful_request: bool = False
) -> str:
    """One short turn. Acknowledgements only where they cannot read as a yes to a harmful act (alone, after a
    benign question, or after a harmful request that is not a yes/no question), and after such a request mostly
    ready replies; yes/no replies and small talk only after benign questions."""
    kinds = ["greeting", "thanks", "welcome", "clarify", "farewell"]
    if after_benign_question or request or harmful_request:
        kinds += ["acknowledge", "acknowledge"]
    if harmful_request:
        kinds += ["ready"] * 7  # half of the turns
    if after_benign_question:
        kinds += ["answer", "small_talk"]
    kind = generator.choice(kinds)
    if kind == "greeting":
        text = _phrase(generator, GREETINGS)
        if generator.random() < 0.5:
            text = f"{text}{generator.choice(('!', ',', '.', ' -'))} {generator.choice(OPENINGS)}"
    elif kind == "thanks":
        text = _phrase(generator, THANKS)
    elif kind == "welcome":
        text = _phrase(generator, WELCOMES)
    elif kind == "clarify":
        text = generator.choice(CLARIFICATIONS)
    elif kind == "farewell":
        text = _phrase(generator, FAREWELLS)
    elif kind == "acknowledge":
        text = _phrase(generator, ACKNOWLEDGEMENTS)
        if generator.random() < 0.5:
            text = f"{text.rstrip('.!')}{generator.choice(('!', '.', ','))} {generator.choice(FOLLOW_UPS)}"
    elif kind == "ready":
        text = _phrase(generator, READY_REPLIES)
        if generator.random() < 0.5:
            follow_up = generator.choice(FOLLOW_UPS + CLARIFICATIONS)
            text = f"{text.rstrip('.!')}{generator.choice(('!', '.', ','))} {follow_up}"
    elif kind == "answer":
        text = generator.choice(SHORT_ANSWERS)
    else:
        text = generator.choice(SMALL_TALK)
    return _cased(generator, text)


def _phrase(generator: random.Random, phrases: Sequence[str]) -> str:
    return generator.choice(phrases) + generator.choice(_ENDINGS)


def _cased(generator: random.Random, text: str) -> str:
    """``text`` as written, or (sometimes) all lower case, as people type in chats, or shouted."""
    draw = generator.random()
    if draw < 0.2:
        return text.lower()
    if draw < 0.25 and len(text) < 20:
        return text.upper()
    return text


def _asks_yes_or_no(question: str) -> bool:
    """Whether a "Sure." after ``question`` could read as approval: a yes/no question, or one about self-harm."""
    return bool(_YES_NO_START.search(question) or _SELF_HARM.search(question))
