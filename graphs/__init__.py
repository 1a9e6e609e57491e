"""The LangGraph synthesis graph (extract_skills → plan → execute → rewrite → critique → augment).

Not built yet: see the synthesis-service issue. Imports `rods`; never imported by `rods`.
"""
