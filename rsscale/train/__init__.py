"""The training core: one run of the ResNet-RS recipe, the unit of every sweep cell.

`rsscale.train.loop.train(cell, run_dir)` is the entry point. It calls one component per concern:
`trainer.Trainer` (data, model, one epoch of `step.TrainStep`s), `checkpoint.Checkpointer`
(cadence, resume, preemption hand-over), `evaluate.Evaluator` (minival/val/EMA, latency) and
`recorder.RunRecorder` (status changes, record.json, W&B); recipe, EMA, record, device and
distributed helpers live beside them.
"""
