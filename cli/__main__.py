"""`python -m cli …` runs the `rods` command (the demo starts its child processes this way)."""

from cli.app import app

app()
