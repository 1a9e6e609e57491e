"""Celery app, synthesis tasks and the boundary-stream dispatcher.

Not built yet: see the synthesis-service issue. Imports `rods` and `graphs`.
"""
