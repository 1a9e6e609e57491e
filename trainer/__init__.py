"""The GRPO trainer (policy, rollout engines, loss, loop, evaluation).

Not built yet: see the trainer issue. Imports `rods`; never imports Celery or LangGraph.
"""
