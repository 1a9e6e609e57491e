"""The procedural synthesis backend (no model): API-graph resampling, state-grounded argument
samplers and per-function phrase templates. See `backend.py`."""

from graphs.synthesis.procedural.backend import ProceduralBackend

__all__ = ["ProceduralBackend"]
