"""The training core: one run of the ResNet-RS recipe, the unit of every sweep cell.

`rsscale.train.loop.train(cell, run_dir)` is the entry point; recipe, EMA, checkpoint, record,
W&B and distributed helpers live beside it.
"""
