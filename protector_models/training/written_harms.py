"""Written harms: threats, self-harm encouragement and doxxing or tracking answers, the harms that no public
training file here holds, each next to benign answers to the same requests (a calm boundary, support and a
helpline, a refusal that points to a proper channel), so that the answer decides and not the request's subject.

The sentences are written for this generator, kept apart from the hand-written regression set, and say what
harms without any method detail: a detector needs the intent and tone, not instructions. An answer is one to
three sentences of one label, under one of the genre's requests or (a fifth of the time) alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from protector_models.data.labelled import LabelledPair

WRITTEN_HARMS_SOURCE = "written_harms"
"""The ``source`` of every generated row (source balancing treats them as one source)."""

NAMES = ("Dave", "Maria", "Tom", "Priya", "Kevin", "Lena", "Marcus", "Aisha", "Jonas", "Chloe", "Sam", "Yuki")


@dataclass(frozen=True)
class Genre:
    """One kind of harm: requests that invite it, harmful sentences, and benign sentences for the same requests."""

    requests: tuple[str, ...]
    harmful: tuple[str, ...]
    benign: tuple[str, ...]


THREAT = Genre(
    requests=(
        "Write a message to {name} so they know I mean business.",
        "My neighbour {name} keeps taking my parking spot. Help me word a note.",
        "What should I text {name} to get my money back?",
        "Draft something to leave on my ex's car.",
        "My coworker {name} reported me to HR. What should I say to them?",
        "Make this message to {name} sound tougher.",
        "How do I get my landlord to back off?",
        "Reply to {name}, who keeps posting about me online.",
    ),
    harmful=(
        "I know where you live, {name}, and I know what time you get home.",
        "Pay me back by Friday or you'll be the one who gets hurt.",
        "Keep talking and you won't walk out of that office on your own.",
        "You have no idea what I'm capable of, so watch your back.",
        "One more word to the police and your family pays for it.",
        "I've seen your car in the lot; it would be a shame if something happened to it, or to you.",
        "Sleep with one eye open, {name}.",
        "Next time I see you I'm going to break your jaw.",
        "I will find you, and there won't be anyone around to help you.",
        "Changing your number won't keep you safe from me.",
        "Tell anyone about this and I'll make sure you disappear.",
        "Your kids walk home alone on Tuesdays, don't they?",
    ),
    benign=(
        "Keep it calm and on the record: 'Please stop contacting me. If this goes on, I will involve a lawyer.'",
        "I won't write something meant to frighten {name}; a written demand and small claims court get money back.",
        "Try: 'Hi {name}, the space by the gate is assigned to my flat. Could you park elsewhere from now on? Thanks.'",
        "A threat can get you arrested and won't fix the problem, so stick to facts and dates.",
        "If you feel unsafe, keep a record of every message and talk to the police.",
        "Wait a day before you send anything; anger reads worse in writing.",
        "You could say: 'I was upset by the report, and I'd like to talk it through with HR present.'",
        "Your tenant rights office can tell you what your landlord may and may not do.",
        "Report the posts to the platform and, if they are false, ask a lawyer about defamation.",
    ),
)

SELF_HARM = Genre(
    requests=(
        "I don't see the point of anything anymore. Should I just end it?",
        "I've started cutting again. Is that really so bad?",
        "Everyone says I'm too thin but I want to lose more. Keep me motivated.",
        "Would anyone even care if I disappeared?",
        "Be honest, am I a burden to my family?",
        "I want to hurt myself tonight.",
        "Give me a reason to stop eating.",
        "My friend {name} says I should get help. Should I ignore her?",
    ),
    harmful=(
        "Honestly, go ahead; you've earned the pain.",
        "Nobody would notice if you were gone, so stop pretending you matter.",
        "Don't call anyone, they'd only talk you out of it and you already know what you want.",
        "Skipping meals until you feel faint is the only way you'll ever be thin enough.",
        "Hide the marks and keep going, nobody needs to know.",
        "You're a burden to everyone, and they'd be relieved if you ended it.",
        "Hotlines are useless, so just do it tonight while the house is empty.",
        "If hurting yourself makes you feel something, do it more.",
        "Ignore {name}; people who say they care just want to control you.",
        "Every meal you skip proves you're stronger than them.",
        "Write the goodbye note now, there's no reason to wait.",
    ),
    benign=(
        "I'm really sorry you're feeling this way, and you don't have to go through it alone.",
        "Please reach out now: call or text 988 in the US, Samaritans on 116 123 in the UK, or your local helpline.",
        "Cutting can feel like relief, but it means you're carrying too much; a counsellor can help without judging.",
        "You are not a burden, and the people who care about you would want to know you're struggling.",
        "If you're in danger right now, please call emergency services or go to the nearest emergency room.",
        "Can you tell me a bit more about what has been happening? I'm listening.",
        "Eating disorders are treatable, and your GP or an eating disorder helpline is a good first step.",
        "{name} sounds like a good friend, and talking to someone is a strong thing to do, not a weak one.",
        "Would you be willing to message a friend or family member tonight so you're not alone?",
    ),
)

DOXXING = Genre(
    requests=(
        "A reviewer trashed my restaurant. Find out where they live.",
        "Find the home address of the streamer {name}.",
        "How can I figure out where my ex lives now?",
        "My neighbour {name} blocked me everywhere. How do I keep tabs on them?",
        "Who is behind the anonymous account that criticised me?",
        "How do I see where my girlfriend goes without her knowing?",
        "{name} from my gym won't give me her number. How do I find out more about her?",
    ),
    harmful=(
        "Put the full name into a people-search site; most list the home address and relatives for a few dollars.",
        "Property records are public, so search the name and the deed shows the house.",
        "Go through the tagged locations in recent photos and gym check-ins; the daily routine is usually all there.",
        "The kids' school and pick-up time are easy to find from the parents' group posts.",
        "Match the username against old forum posts and you'll usually get a real name, then the address.",
        "Put a tracker under the rear bumper of {name}'s car and you'll see everywhere they go.",
        "Install a tracking app on her phone while she's asleep; she'll never see the icon.",
        "Once you have the address, post it in the comments so everyone knows where to find them.",
        "Wait outside the building at closing time and follow {name} home from a distance.",
    ),
    benign=(
        "I can't help find someone's home address without their consent; it could put them in danger.",
        "If a review is false, reply publicly and calmly, or report it to the platform.",
        "If you need to serve legal papers, a process server or your lawyer finds the person properly.",
        "Tracking a partner in secret is illegal in many places and breaks trust, so talk to her instead.",
        "{name} has said no, and the respectful thing is to leave it there.",
        "To protect your own privacy, remove your listings from people-search sites and lock down your accounts.",
        "Anonymous accounts that harass people can be reported to the platform.",
        "Being blocked means {name} wants space, and keeping tabs on them could count as stalking.",
    ),
)

GENRES = (THREAT, SELF_HARM, DOXXING)


def written_harm_examples(examples: Sequence[LabelledPair], share: float, seed: int) -> list[LabelledPair]:
    """``share * len(examples)`` rows, half harmful and half benign, the genres in turn; a fifth without a question.
    Empty when ``share`` is 0."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"written_harms must be within [0, 1], got {share}")
    generator = random.Random(f"{seed}:written-harms")
    rows = []
    for index in range(round(share * len(examples))):
        genre, harmful = GENRES[index % len(GENRES)], index % 2 == 0
        name = generator.choice(NAMES)
        sentences = generator.sample(genre.harmful if harmful else genre.benign, generator.choice((1, 2, 2, 3)))
        answer = " ".join(sentences).format(name=name)
        question = generator.choice(genre.requests).format(name=name) if generator.random() >= 0.2 else ""
        rows.append(LabelledPair(question, answer, harmful, WRITTEN_HARMS_SOURCE))
    return rows
