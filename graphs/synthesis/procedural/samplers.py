"""State-grounded argument samplers for every function of the 8 BFCL classes, behind one call.

`sample_arguments(function, world, earlier, rng)` returns keyword arguments or a `Failure`
(`param_gen_failed`) when no valid arguments exist in this state (no file to read, no open
order to cancel, not logged in where a token is needed). It retries a few draws to avoid
repeating an earlier call exactly (the graph rejects exact duplicates). Nothing here executes
anything: validity is judged from the state alone, the graph executes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from graphs.synthesis.backend import Failure
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.samplers_apps import (
    MESSAGE_SAMPLERS,
    TICKET_SAMPLERS,
    TWITTER_SAMPLERS,
)
from graphs.synthesis.procedural.samplers_fs import FS_SAMPLERS, MATH_SAMPLERS
from graphs.synthesis.procedural.samplers_trading import TRADING_SAMPLERS
from graphs.synthesis.procedural.samplers_travel import TRAVEL_SAMPLERS, VEHICLE_SAMPLERS
from graphs.synthesis.procedural.scope import NoArgs, Scope
from rods.env.world import World
from rods.tasks import ToolCall

Sampler = Callable[[Scope], dict[str, Any]]

SAMPLERS: dict[str, dict[str, Sampler]] = {
    "GorillaFileSystem": FS_SAMPLERS,
    "MathAPI": MATH_SAMPLERS,
    "MessageAPI": MESSAGE_SAMPLERS,
    "TwitterAPI": TWITTER_SAMPLERS,
    "TicketAPI": TICKET_SAMPLERS,
    "TradingBot": TRADING_SAMPLERS,
    "TravelAPI": TRAVEL_SAMPLERS,
    "VehicleControlAPI": VEHICLE_SAMPLERS,
}
_BY_NAME: dict[str, Sampler] = {
    name: fn for table in SAMPLERS.values() for name, fn in table.items()
}
_DRAWS = 6  # fresh draws before giving up on a non-duplicate call


def sample_arguments(
    function: str,
    world: World,
    earlier: list[tuple[ToolCall, str]],
    rng: random.Random,
    flow: Flow | None = None,
) -> dict[str, Any] | Failure:
    """Arguments for `function` after `earlier` (`flow`: their offers, when the caller has them)."""
    sampler = _BY_NAME.get(function)
    if sampler is None:
        return Failure("param_gen_failed", f"no sampler for {function!r}")
    flow = flow if flow is not None else Flow(earlier)
    scope = Scope(world=world, flow=flow, rng=rng, made=tuple(c for c, _ in earlier))
    reason = "every draw repeated an earlier call"
    for _ in range(_DRAWS):
        try:
            args = sampler(scope)
        except NoArgs as e:
            return Failure("param_gen_failed", f"{function}: {e}")
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as e:  # a state shape we did not foresee
            return Failure("param_gen_failed", f"{function}: unexpected state ({e!r})")
        args = world.explicit_defaults(function, args)  # as the graph writes them
        if ToolCall(name=function, arguments=args) not in scope.made:
            return args
    return Failure("param_gen_failed", f"{function}: {reason}")
