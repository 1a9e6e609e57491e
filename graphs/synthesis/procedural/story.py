"""One user's story across a variant's turns: who they are, what they are working on, and why
each turn's request follows from the last.

BFCL's users explain themselves ("As part of my latest photography project, I need to gather
files…", "Given that the trip isn't looking too likely, I'll need to refuel") and keep one
situation through the conversation; issue 13 found variants stringing unrelated requests
together with no situation at all. A `Story` draws one situation per variant (a project, an
occasion) and gives each turn an optional context sentence about the app that turn uses, in
terms of that same situation, and later turns a link to what came before. The sentences are
combinatorial (several shapes × word slots × the project), so none recurs in more than a few
percent of variants; they state no value the agent needs, so they change no ground truth.
"""

from __future__ import annotations

import random

from graphs.synthesis.procedural import pools

_DOING = ("sorting out", "tidying", "going through", "reorganising", "cleaning up", "reviewing")
_AREA = ("work", "project", "shared", "team", "research", "personal", "archive", "client")
_WHEN = (
    "before the weekend", "this afternoon", "ahead of the review", "before my flight",
    "by end of day", "before tomorrow's meeting", "while I have a minute", "before the deadline",
)  # fmt: skip
_FEEL = ("a bit behind", "short on time", "juggling a lot", "finally catching up", "in a hurry")

# Context sentences per class: {p} the project, {d} doing, {a} area, {w} when, {f} feeling.
_CONTEXT: dict[str, tuple[str, ...]] = {
    "GorillaFileSystem": (
        "I'm {d} my {a} files for {p}.",
        "With {p} coming up, my {a} folders need attention {w}.",
        "I've been {d} the documents from {p} and I'm {f}.",
        "My workspace is a mess after {p}, so I'm {d} it {w}.",
        "There are a few files from {p} I have to deal with {w}.",
    ),
    "TwitterAPI": (
        "I want my followers to hear about {p} {w}.",
        "My feed has been quiet since {p}, and I'd like to change that.",
        "People online keep asking about {p}.",
        "I'm {f}, but I still want to keep my social account active around {p}.",
    ),
    "MessageAPI": (
        "I have to keep my colleagues in the loop about {p}.",
        "A few people are waiting to hear from me about {p}.",
        "I'm {f} and need to get some messages out about {p} {w}.",
    ),
    "TicketAPI": (
        "Something went wrong with {p} and support should know about it.",
        "I've hit a snag with {p} that needs a ticket.",
        "The support desk is handling a problem tied to {p}.",
    ),
    "TradingBot": (
        "I'm rethinking my investments {w} because of {p}.",
        "The market has been jumpy, and with {p} I'm {f}.",
        "I'd like to tidy up my portfolio {w}.",
        "After {p} I have some cash to put to work.",
    ),
    "TravelAPI": (
        "I'm planning travel around {p}.",
        "There's a trip tied to {p}, and I'm {f}.",
        "My travel plans for {p} need sorting {w}.",
        "I have to get my bookings in order {w}.",
    ),
    "VehicleControlAPI": (
        "I'm about to drive out for {p}.",
        "The car needs to be ready {w}; it's for {p}.",
        "I've got a long drive ahead because of {p}.",
        "Before heading out {w}, I want the car in good shape.",
    ),
    "MathAPI": (
        "I need a few numbers for {p}.",
        "I'm working out some figures for {p} {w}.",
        "Some quick arithmetic would help with {p}.",
    ),
}
_LINKS = (
    "Now that that's done,", "With that sorted,", "Building on that,", "Following on from that,",
    "Good, that helps.", "That's one thing off the list.", "Okay, with that in hand,",
    "Since we have that now,", "Based on what you found,", "Next part of the plan:",
)  # fmt: skip


class Story:
    """One situation for a whole variant: context sentences and links between its turns."""

    def __init__(self, rng: random.Random):
        self.project = rng.choice(pools.OBJ)
        self.rng = rng

    def context(self, cls: str) -> str:
        """A sentence about this turn's app in terms of the story ('' for an unknown class)."""
        shapes = _CONTEXT.get(cls)
        if not shapes:
            return ""
        r = self.rng
        text = r.choice(shapes).format(
            p=self.project, d=r.choice(_DOING), a=r.choice(_AREA), w=r.choice(_WHEN), f=r.choice(_FEEL)
        )
        return text[:1].upper() + text[1:]

    def link(self) -> str:
        return self.rng.choice(_LINKS)
