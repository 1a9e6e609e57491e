"""The synthesis graph: boundary seed → new executable multi-turn tasks of the same structure."""
