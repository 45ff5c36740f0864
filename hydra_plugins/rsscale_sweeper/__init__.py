"""rsscale's Hydra sweeper: `python -m rsscale.sweep -m ...` runs one rsscale sweep (no dropped cells)."""
