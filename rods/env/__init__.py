"""The BFCL multi-turn tool world: safe call parsing, worlds, episodes, progress reward."""

from rods.env.calls import ERROR_CODES, ParsedMessage, parse_python_call, parse_tool_calls
from rods.env.episode import Episode, StepResult
from rods.env.reward import GroundTruthCache, Score, score_calls
from rods.env.world import World, WorldTemplate

__all__ = [
    "ERROR_CODES",
    "Episode",
    "GroundTruthCache",
    "ParsedMessage",
    "Score",
    "StepResult",
    "World",
    "WorldTemplate",
    "parse_python_call",
    "parse_tool_calls",
    "score_calls",
]
