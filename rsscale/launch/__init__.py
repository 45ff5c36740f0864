"""Sweeps: grid expansion, the manifest, resource classes, submitit launchers and the cell runner."""
