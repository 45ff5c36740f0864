"""Fashion-MNIST from the Debian package: sizes, shapes, minival isolation, exact resume, DDP slices.

Needs /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist; `make setup`
installs it). Arrays are cached per process, so each build after the first is cheap.
"""

import itertools

import pytest
import torch

from rsscale.data import build_data
from rsscale.data.minival import split_indices

CPU = torch.device("cpu")
KWARGS = ("rank", "world_size", "seed", "channels_last", "randaugment_magnitude", "for_minival_only")


def build(batch_size=64, eval_batch_size=500, **cfg):
    kw = {k: cfg.pop(k) for k in KWARGS if k in cfg}
    kw.setdefault("seed", 0)
    return build_data(
        {"name": "fashion_mnist", **cfg},
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        device=CPU,
        **kw,
    )


@pytest.fixture(scope="module")
def full():
    return build(batch_size=256, train_res=28, eval_res=32)


def test_sizes_labels_and_shapes(full):
    assert (full.train_size, full.minival_size, full.val_size) == (58800, 1200, 10000)
    assert (full.num_classes, full.in_chans, full.name) == (10, 1, "fashion_mnist")
    assert full.train.steps_per_epoch == 58800 // 256
    x, y = next(full.train.batches(0))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    labels = torch.cat([y for _, y in full.val])
    assert len(labels) == 10000 and set(labels.tolist()) == set(range(10))
    assert torch.bincount(labels).tolist() == [1000] * 10
    xv, _ = next(iter(full.val))
    assert xv.shape == (500, 1, 32, 32)


def test_train_res_32_channels_last_and_normalised():
    b = build(batch_size=128, train_res=32, eval_res=28, channels_last=True, train_subset=1024)
    x, _ = next(b.train.batches(0))
    assert x.shape == (128, 1, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2
    xv = torch.cat([x for x, _ in b.val])
    assert xv.shape == (10000, 1, 28, 28)
    assert abs(float(xv.mean())) < 0.02 and abs(float(xv.std()) - 1) < 0.02


def test_minival_never_in_a_training_batch(full):
    _, expected = split_indices(range(60000), 0.02)
    assert full.minival.indices.tolist() == expected.tolist()
    minival = set(full.minival.indices.tolist())
    plan = full.train.epoch_indices(3)  # what batches() draws from, audited without images
    assert plan.shape == (full.train.steps_per_epoch, 256)
    seen = plan.flatten().tolist()
    assert not minival & set(seen)
    assert len(seen) == len(set(seen)) == full.train.steps_per_epoch * 256  # no repeats
    drawn = [i for *_, i in itertools.islice(full.train.batches(3, return_indices=True), 3)]
    assert all(torch.equal(d, p) for d, p in zip(drawn, plan[:3]))
    tail = [i for *_, i in full.train.batches(3, start_step=plan.shape[0] - 2, return_indices=True)]
    assert all(torch.equal(d, p) for d, p in zip(tail, plan[-2:]))
    got = torch.cat([i for *_, i in full.minival.batches(return_indices=True)])
    assert sorted(got.tolist()) == sorted(minival)


def test_train_subset_applied_after_minival_removal():
    b = build(train_subset=1000)
    train_idx, minival = split_indices(range(60000), 0.02)
    seen = set(torch.cat([i for *_, i in b.train.batches(0, return_indices=True)]).tolist())
    assert b.train_size == 1000 and b.minival_size == 1200
    assert seen <= set(train_idx[:1000].tolist()) and len(seen) == 15 * 64


def test_train_eval_is_a_clean_fixed_training_subset_the_size_of_minival():
    b = build(train_subset=4000, train_res=16, eval_res=16)
    train_idx, minival = split_indices(range(60000), 0.02)
    assert b.train_eval.num_samples == b.minival_size == 1200
    assert b.train_eval.indices.tolist() == train_idx[:1200].tolist()  # in the training set, not minival
    assert not set(b.train_eval.indices.tolist()) & set(minival.tolist())
    first = torch.cat([x for x, _ in b.train_eval])
    assert torch.equal(first, torch.cat([x for x, _ in b.train_eval]))  # no augmentation: fixed
    small = build(train_subset=500)
    assert small.train_eval.num_samples == 500  # never more than the training set
    assert build(train_subset=640, minival_fraction=None).train_eval is None


@pytest.mark.parametrize("ra", [None, 9])
def test_resume_is_bit_exact_and_epochs_differ(ra):
    b = build(
        batch_size=16 if ra else 64, train_subset=160 if ra else 640, train_res=32, randaugment_magnitude=ra
    )
    full = list(b.train.batches(1, return_indices=True))
    assert len(full) == b.train.steps_per_epoch == 10
    tail = list(b.train.batches(1, start_step=6, return_indices=True))
    assert len(tail) == 4
    for (x0, y0, i0), (x1, y1, i1) in zip(full[6:], tail):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(i0, i1)
    again = list(b.train.batches(1))  # a fresh pass (new process in real life) is identical
    assert all(torch.equal(a[0], c[0]) for a, c in zip(full, again))
    other = list(b.train.batches(2, return_indices=True))
    assert not torch.equal(full[0][2], other[0][2])
    assert list(b.train.batches(1, start_step=10)) == []
    with pytest.raises(ValueError, match="start_step"):
        b.train.batches(1, start_step=11)


def test_augmentation_does_crop_and_flip():
    b = build(batch_size=64, train_subset=640, train_res=28, eval_res=28)
    x, _, idx = next(b.train.batches(0, return_indices=True))
    plain = (b.train.images[idx].float() - 255 * 0.2860) / (255 * 0.3530)
    same = [torch.equal(plain[k], x[k]) for k in range(64)]
    assert sum(same) < 20  # offset (2, 2) without flip is 1 of 50 outcomes
    flipped = [torch.equal(plain[k].flip(-1), x[k]) for k in range(64)]
    assert sum(flipped) < 20


def test_null_minival_fraction_gives_empty_minival():
    # 0 is rejected (issue 10: it used to report minival top-1 0.0); null means "no minival"
    b = build(train_subset=640, minival_fraction=None)
    assert b.minival_size == 0 and list(b.minival) == [] and len(b.minival) == 0


def test_ddp_slices_are_disjoint_and_make_the_global_batch():
    single = build(batch_size=64, train_subset=640)
    ranks = [build(batch_size=32, train_subset=640, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].train.steps_per_epoch == single.train.steps_per_epoch == 10
    s = list(single.train.batches(0, return_indices=True))
    r0 = list(ranks[0].train.batches(0, return_indices=True))
    r1 = list(ranks[1].train.batches(0, return_indices=True))
    for (xs, ys, is_), (x0, y0, i0), (x1, y1, i1) in zip(s, r0, r1):
        assert not set(i0.tolist()) & set(i1.tolist())
        assert torch.equal(torch.cat([i0, i1]), is_) and torch.equal(torch.cat([y0, y1]), ys)
        assert torch.equal(torch.cat([x0, x1]), xs)  # same augmentation whatever the world size
    # eval shards: r::world_size, together exactly once
    got = torch.cat([i for b in ranks for *_, i in b.minival.batches(return_indices=True)])
    assert sorted(got.tolist()) == sorted(single.minival.indices.tolist())
    assert ranks[0].minival.local_num_samples + ranks[1].minival.local_num_samples == 1200
    assert ranks[0].minival.num_samples == 1200


def test_for_minival_only_leaves_val_out():
    b = build(train_subset=640, for_minival_only=True)
    assert b.val is None and b.val_size == 0 and b.minival_size == 1200


def test_batch_larger_than_train_set_is_an_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        build(batch_size=64, train_subset=100, world_size=2)
