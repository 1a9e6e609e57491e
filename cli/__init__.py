"""The `rods` command: one module per command group, and the only layer that wires the others.

`cli` may import every package (`services`, `graphs`, `trainer`, `report`, `rods`); nothing
imports `cli`. Heavy layers are imported inside command functions so `rods --help` stays light.
"""
