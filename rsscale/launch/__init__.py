"""Sweeps: grid expansion, the manifest, resource classes, the backends (where cells run), the cell
runner and the cells' states."""
