"""The synthesis graph: boundary seed → new executable multi-turn tasks of the same structure.

    graph.py     `synthesize(seed, n_variants=…, backend=…)`, the one call per request; the graph
    nodes.py     nodes (partial-state functions); routers.py the pure routers
    state.py     SynthState, SynthConfig, SynthDeps, SynthesisResult, result_metrics
    backend.py   the Backend contract (plan / arguments / queries / judge / repair) and failure codes
    backends.py  make_backend(settings, …): the configured backend, for the worker and the CLI
    gates.py     deterministic critique gates and the near-duplicate indexes
    patches.py   minimal initial-config patches for patchable simulator errors
    augment.py   base → miss_func / miss_param / long_context
    llm.py       LLMBackend (litellm), prompts.py its prompts
    procedural/  ProceduralBackend (no model)
"""
