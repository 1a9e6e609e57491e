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

# What a variant's user is busy with: occasions of the kind BFCL's users tell of (a family
# vacation, a research project, a business engagement), many of them, so that no occasion's
# words recur in more than a few percent of variants (with the 20 work items of `pools.OBJ`,
# "the kitchen remodel" was in 7 % of variants and told them from human tasks).
OCCASIONS = (
    "my family vacation", "the business trip", "my sister's wedding", "the conference this fall",
    "our anniversary", "my photography project", "my research project", "the quarterly report",
    "a client meeting", "the product launch", "my road trip", "the holiday season",
    "my daughter's graduation", "the team offsite", "my move to a new apartment",
    "the family reunion", "tax season", "my new job", "the charity event", "my marathon training",
    "the art exhibition", "the board meeting", "the home renovation", "my cousin's birthday",
    "the year-end review", "my son's school project", "my retirement planning",
    "the summer internship", "the science fair", "my weekend getaway", "the investor pitch",
    "my thesis", "the budget review", "our company retreat", "the book fair", "my visit home",
    "the hackathon", "my sabbatical", "the audit next month", "the startup I'm building",
    "my friend's bachelor party", "the music festival", "our office move", "the workshop I'm running",
    "my parents' visit", "the ski trip", "the open house", "my language course",
    "the film project", "the trade show", "my cooking class", "the volunteer drive",
    "my client's deadline", "the annual report", "the garden project", "my side business",
    "the camping trip", "the job interview", "my podcast", "the fundraiser",
)  # fmt: skip

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
        "My workspace is a mess after {p}, so I'm {d} things {w}.",
        "There are a few files from {p} I have to deal with {w}.",
        "Everything for {p} lives in my {a} directory.",
        "Part of {p} means {d} old {a} documents.",
        "Nobody has touched the {a} files since {p}.",
    ),
    "TwitterAPI": (
        "I want my followers to hear about {p} {w}.",
        "My feed has been quiet since {p}, and I'd like to change that.",
        "People online keep asking about {p}.",
        "Being {f}, I still want my social account active around {p}.",
        "Social media is where I share news on {p}.",
        "Since {p}, my account could use some activity.",
    ),
    "MessageAPI": (
        "I have to keep my colleagues in the loop about {p}.",
        "A few people are waiting to hear from me about {p}.",
        "Being {f}, I need to get some messages out about {p} {w}.",
        "Some colleagues still don't know about {p}.",
        "Messages about {p} have piled up.",
    ),
    "TicketAPI": (
        "Something went wrong with {p} and support should know about it.",
        "I've hit a snag with {p} that needs a ticket.",
        "The support desk is handling a problem tied to {p}.",
        "Support tickets about {p} need some care {w}.",
        "A problem with {p} came up {w}.",
    ),
    "TradingBot": (
        "I'm rethinking my investments {w} because of {p}.",
        "The market has been jumpy, and with {p} I'm {f}.",
        "Tidying up my portfolio {w} is overdue.",
        "After {p} I have some cash to put to work.",
        "My broker account needs attention {w}.",
        "Stocks have been on my mind since {p}.",
    ),
    "TravelAPI": (
        "I'm planning travel around {p}.",
        "There's a trip tied to {p}, and I'm {f}.",
        "My travel plans for {p} need sorting {w}.",
        "Bookings for {p} have to be in order {w}.",
        "A work trip for {p} is coming up.",
        "Travel for {p} is next on my list.",
    ),
    "VehicleControlAPI": (
        "I'm about to drive out for {p}.",
        "The car needs to be ready {w}; it's for {p}.",
        "I've got a long drive ahead because of {p}.",
        "Before heading out {w}, I want the car in good shape.",
        "A road trip for {p} starts soon.",
        "Driving to {p} is on the plan {w}.",
    ),
    "MathAPI": (
        "I need a few numbers for {p}.",
        "I'm working out some figures for {p} {w}.",
        "Some quick arithmetic would help with {p}.",
        "Figures for {p} still need checking.",
    ),
}
# Lead-ins before a context sentence (half of them have none).
_LEADS = (
    "So, ", "Okay, so ", "Honestly, ", "Right now ", "This week ", "Well, ", "Also, ",
    "For context, ", "Today ", "Basically, ", "Meanwhile ", "Lately ", "Anyway, ", "Frankly, ",
)  # fmt: skip
# Links back to the previous turn: one word, so the turn's first words still come from its
# request ("Good, now …", "Thanks. Delete …").
_LINKS = (
    "Good,", "Great,", "Nice,", "Okay,", "Perfect,", "Thanks,", "Cool,", "Alright,", "Right,",
    "Excellent,", "Lovely,", "Fine,", "So,", "Then,", "Now,", "Next,", "Super,", "Brilliant,",
    "Wonderful,", "Sweet,",
)  # fmt: skip


class Story:
    """One situation for a whole variant: context sentences and links between its turns."""

    def __init__(self, rng: random.Random):
        self.project = rng.choice(OCCASIONS)
        self.rng = rng
        self.told: set[str] = set()  # context shapes already used: a story does not repeat itself

    def context(self, cls: str) -> str:
        """A sentence about this turn's app in terms of the story ('' for an unknown class)."""
        shapes = [s for s in _CONTEXT.get(cls, ()) if s not in self.told]
        if not shapes:
            return ""
        r = self.rng
        shape = r.choice(shapes)
        self.told.add(shape)
        text = shape.format(
            p=self.project, d=r.choice(_DOING), a=r.choice(_AREA), w=r.choice(_WHEN), f=r.choice(_FEEL)
        )
        if r.random() < 0.5:
            lead = r.choice(_LEADS)
            text = lead + (text if text[:2] in ("I'", "I ") else text[:1].lower() + text[1:])
        return text[:1].upper() + text[1:]

    def link(self) -> str:
        return self.rng.choice(_LINKS)
