"""Optuna tuning against minival: search spaces, the shared study, workers, results and export.

`python -m rsscale.tune +search=NAME [overrides]` tunes the recipe of one cell; every trial is an
ordinary cell run (same train loop, run record, checkpoints, W&B) under the study directory.
"""
