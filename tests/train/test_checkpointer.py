"""The Checkpointer on its own: cadence (steps, minutes on an injected clock, epochs), save and
resume into Statefuls, the checkpoint.prev.pt fallback, and the preemption hand-over on a real
SIGUSR2/SIGTERM sent to this process."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from rsscale.config import RuntimeConfig
from rsscale.train.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, Checkpointer, PreemptRequested


class Counter:
    """A Stateful that counts how often the checkpointer collected it."""

    def __init__(self):
        self.step = 0
        self.collected = 0
        self.loaded = None

    def state_dict(self):
        self.collected += 1
        return {"step": self.step, "payload": torch.arange(3) + self.step}

    def load_state_dict(self, state):
        self.loaded = dict(state)
        self.step = state["step"]


class Notes:
    """A second Stateful with keys of its own (the checkpoint is one flat dict)."""

    def __init__(self, notes=None):
        self.notes = notes

    def state_dict(self):
        return {"notes": self.notes}

    def load_state_dict(self, state):
        self.notes = state["notes"]


def rt(**cadence) -> RuntimeConfig:
    """The runtime group with no cadence but the one a test sets (every epoch by default)."""
    return RuntimeConfig(**{"checkpoint_every_minutes": 0, **cadence})


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def on_disk(run_dir):
    return torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False)


def test_every_n_steps(tmp_path):
    state = Counter()
    ck = Checkpointer(tmp_path, rt(checkpoint_every_steps=3), states=[state])
    saved = []
    for step in range(1, 8):
        state.step = step
        ck.after_step(step)
        if state.collected > len(saved):
            saved.append(step)
    assert saved == [3, 6]
    assert on_disk(tmp_path)["step"] == 6
    prev = torch.load(tmp_path / PREVIOUS_NAME, map_location="cpu", weights_only=False)
    assert prev["step"] == 3  # the save before is kept as the fallback


def test_every_n_minutes_on_an_injected_clock(tmp_path):
    clock, state = FakeClock(), Counter()
    ck = Checkpointer(tmp_path, rt(checkpoint_every_minutes=1), states=[state], clock=clock)
    clock.t += 500  # set-up time before training does not count
    with ck.watch_preemption():
        clock.t += 59
        ck.after_step(1)
        assert state.collected == 0
        clock.t += 2  # 61 s since the start of training
        ck.after_step(2)
        assert state.collected == 1 and ck.last_save == clock.t
        clock.t += 30  # the clock restarts at each save
        ck.after_step(3)
        assert state.collected == 1
        clock.t += 31
        ck.after_step(4)
        assert state.collected == 2


def test_no_step_cadence_saves_only_at_epoch_ends(tmp_path):
    state = Counter()
    ck = Checkpointer(tmp_path, rt(checkpoint_every_steps=None, checkpoint_every_minutes=0), states=[state])
    for step in range(1, 50):
        ck.after_step(step)
    assert state.collected == 0 and not (tmp_path / CHECKPOINT_NAME).exists()
    for epoch in range(1, 4):
        ck.after_epoch(epoch, last_epoch=3)
    assert state.collected == 3  # every epoch by default


def test_every_n_epochs_and_always_the_last(tmp_path):
    ck = Checkpointer(tmp_path, rt(checkpoint_every_epochs=2))
    assert [e for e in range(1, 6) if ck.epoch_due(e, last_epoch=5)] == [2, 4, 5]


def test_resume_loads_every_state_and_the_rng(tmp_path):
    a, b = Counter(), Notes(["epoch 1"])
    a.step = 7
    torch.manual_seed(123)
    Checkpointer(tmp_path, rt(), states=[a, b]).save()
    expect = torch.rand(4)  # the draws right after the save

    c, d = Counter(), Notes()
    torch.manual_seed(999)
    assert Checkpointer(tmp_path, rt(), states=[c, d]).resume() is True
    assert torch.equal(torch.rand(4), expect)
    assert c.step == 7 and torch.equal(c.loaded["payload"], torch.arange(3) + 7)
    assert d.notes == ["epoch 1"]
    assert Checkpointer(tmp_path / "empty", rt(), states=[Counter()]).resume() is False


def test_resume_falls_back_to_the_previous_checkpoint(tmp_path):
    state = Counter()
    ck = Checkpointer(tmp_path, rt(), states=[state])
    state.step = 1
    ck.save()
    state.step = 2
    ck.save()
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"truncated")
    fresh = Counter()
    assert Checkpointer(tmp_path, rt(), states=[fresh]).resume() and fresh.step == 1


def test_sigusr2_checkpoints_then_hands_over_to_the_previous_handler(tmp_path):
    state, events = Counter(), []
    ck = Checkpointer(tmp_path, rt(checkpoint_every_steps=100), states=[state])

    def previous(signum, frame):  # submitit's handler: requeue (here: note it)
        events.append(("previous", signum, on_disk(tmp_path)["step"]))

    def on_preempt():  # the recorder: status preempted, before submitit exits
        events.append(("on_preempt", on_disk(tmp_path)["step"]))

    old = signal.signal(signal.SIGUSR2, previous)
    try:
        with ck.watch_preemption(on_preempt=on_preempt):
            state.step = 1
            ck.after_step(1)  # nothing requested yet, not due
            assert state.collected == 0
            os.kill(os.getpid(), signal.SIGUSR2)
            assert events == []  # the handler only sets a flag
            state.step = 2
            with pytest.raises(PreemptRequested):
                ck.after_step(2)
        assert events == [("on_preempt", 2), ("previous", signal.SIGUSR2, 2)]
        assert signal.getsignal(signal.SIGUSR2) is previous  # handler restored
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_stop_signal_checkpoints_and_stops_without_requeue(tmp_path):
    state, events = Counter(), []
    ck = Checkpointer(tmp_path, rt(), states=[state], stop_signals=(signal.SIGTERM,))
    old_usr2 = signal.signal(signal.SIGUSR2, lambda s, f: events.append("requeue"))
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        with (
            pytest.raises(PreemptRequested),
            ck.watch_preemption(on_preempt=lambda: events.append("recorded")),
        ):
            state.step = 5
            os.kill(os.getpid(), signal.SIGTERM)
            ck.after_step(5)
        assert events == ["recorded"] and on_disk(tmp_path)["step"] == 5
        assert signal.getsignal(signal.SIGTERM) == old_term
    finally:
        signal.signal(signal.SIGUSR2, old_usr2)


def test_a_signal_after_the_last_step_is_acted_on(tmp_path):
    state = Counter()
    ck = Checkpointer(tmp_path, rt(), states=[state])
    old = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        with ck.watch_preemption():
            ck.after_training()  # no signal: nothing happens
            assert state.collected == 0
            os.kill(os.getpid(), signal.SIGUSR2)  # during the final evaluation
            state.step = 9
            with pytest.raises(PreemptRequested):
                ck.after_training()
        assert on_disk(tmp_path)["step"] == 9
        assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGUSR2, old)
