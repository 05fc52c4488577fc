"""Question phrasings of synthrooms QA: several training templates per question kind and held-out ones.

Not in the paper (synthrooms is ours; issue 15 item 3). Training scenes use only the TRAINING templates; val/test
scenes carry each question in a training phrasing and, as a separate record marked `"phrasing": "heldout"`, in a
phrasing no training scene uses, so a model's robustness to wording is measured on its own. `parse` inverts every
template, so tests and evaluation can recover a question's kind and slots from its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# kind -> (training templates, held-out templates). Slots: {plural}, {a_cat} ("a chair" / "an armchair"),
# {ref} and {ref2} (noun phrases that single out one object, e.g. "the chair closest to the bed").
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "counting": (("how many {plural} are in the room?", "how many {plural} are there?",
                  "what is the number of {plural} in the room?", "count the {plural} in the room."),
                 ("how many {plural} can you see?", "how many {plural} does this room have?")),
    "colour": (("what color is {ref}?", "what is the color of {ref}?", "which color does {ref} have?"),
               ("what colour is {ref}?", "tell me the color of {ref}.")),
    "existence": (("is there {a_cat} in the room?", "is there {a_cat}?", "does the room have {a_cat}?"),
                  ("can you see {a_cat} in the room?", "is {a_cat} present in the room?")),
    "location": (("where is {ref}?", "where is {ref} located?", "where can i find {ref}?"),
                 ("what is the location of {ref}?",)),
    "next_to": (("what is next to {ref}?", "what is beside {ref}?", "which object is next to {ref}?"),
                ("what object stands beside {ref}?",)),
    "on_top": (("what is on {ref}?", "what is placed on {ref}?", "what is on top of {ref}?"),
               ("what sits on {ref}?",)),
    "height": (("how tall is {ref}?", "what is the height of {ref}?", "how high is {ref}?"),
               ("tell me how tall {ref} is.",)),
    "length": (("how long is {ref}?", "what is the length of {ref}?"), ("how long is {ref} in meters?",)),
    "distance": (("how far is {ref} from {ref2}?", "what is the distance between {ref} and {ref2}?",
                  "how far apart are {ref} and {ref2}?"),
                 ("how many meters is {ref} from {ref2}?",)),
}

#: The question types results are reported by (README table): several kinds share one type.
QUESTION_TYPE = {"counting": "counting", "colour": "colour", "existence": "existence", "location": "location",
                 "next_to": "relation", "on_top": "relation", "height": "size", "length": "size",
                 "distance": "distance"}


def article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def phrase(kind: str, rng: np.random.Generator, heldout: bool = False, **slots: str) -> str:
    """One question of `kind` in a training (or held-out) phrasing chosen by `rng`."""
    options = TEMPLATES[kind][1 if heldout else 0]
    return options[int(rng.integers(len(options)))].format(**slots)


@dataclass(frozen=True)
class Parsed:
    kind: str
    heldout: bool
    slots: dict[str, str]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    body = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+)" for i, p in enumerate(parts))
    return re.compile(body)


# most literal text first, so "where is X located?" is not read as "where is {X located}?"
_PARSERS = sorted(((_pattern(t), kind, held == 1) for kind, groups in TEMPLATES.items()
                   for held, group in enumerate(groups) for t in group),
                  key=lambda p: -len(re.sub(r"\(\?P<\w+>\.\+\)", "", p[0].pattern)))


def parse(question: str) -> Parsed | None:
    """Kind, phrasing set and slot values of a synthrooms question (None if no template produced it)."""
    for pattern, kind, heldout in _PARSERS:
        if m := pattern.fullmatch(question):
            return Parsed(kind, heldout, m.groupdict())
    return None
