"""ImageNet path on a generated JPEG tree: shapes, labels, RandAugment, exact determinism."""

import numpy as np
import pytest
import torch
from jpeg_trees import write_class_tree

from rsscale.data import build_data
from rsscale.data.imagenet import ImageTreeDataset, train_transform

CLASSES = ("n001_cat", "n002_dog", "n003_fox")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_class_tree(
        root, CLASSES, (("train", 8), ("val", 3)), seed=0, sizes=(40, 72), colour=200, quality=90
    )
    (root / "train" / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


def build(root, num_workers=0, batch_size=4, **kw):
    cfg = {"name": "imagenet", "root": str(root), "train_res": 32, "eval_res": 24, "minival_fraction": 0.125}
    cfg.update(kw.pop("cfg", {}), num_workers=num_workers)
    return build_data(cfg, batch_size=batch_size, eval_batch_size=5, device="cpu", seed=0, **kw)


def test_shapes_labels_sizes(tree):
    b = build(tree, randaugment_magnitude=9, channels_last=True)
    assert (b.num_classes, b.in_chans, b.name) == (3, 3, "imagenet")
    assert (b.train_size, b.minival_size, b.val_size) == (21, 3, 9)
    assert b.train.steps_per_epoch == 5
    batches = list(b.train.batches(0, return_indices=True))
    assert len(batches) == 5
    for x, y, _ in batches:
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2}
    xs, ys, idx = zip(*b.val.batches(return_indices=True))
    assert torch.cat(idx).tolist() == list(range(9))
    assert torch.cat(ys).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert xs[0].shape == (5, 3, 24, 24)
    # the class colour channel is the brightest one after eval preprocessing
    assert (torch.cat(xs).mean((2, 3)).argmax(1) == torch.cat(ys)).all()
    minival = set(b.minival.indices.tolist())
    assert len(minival) == 3 and not minival & set(b.train.epoch_indices(0).flatten().tolist())
    # the generalisation gap's training side: minival's size, from the training set, eval transform
    assert b.train_eval.num_samples == 3 and not set(b.train_eval.indices.tolist()) & minival
    xt = torch.cat([x for x, _ in b.train_eval])
    assert xt.shape == (3, 3, 24, 24) and torch.equal(xt, torch.cat([x for x, _ in b.train_eval]))


def test_augmentation_is_a_function_of_seed_epoch_index(tree):
    paths = np.array([f"{CLASSES[0]}/img_{i}.JPEG".encode() for i in range(8)])
    ds = ImageTreeDataset(
        str(tree / "train"), paths, np.zeros(8, np.int64), train_transform(32, 9), seed=0, random=True
    )
    torch.manual_seed(123)  # the global RNG state must not matter
    a = ds[(2, 5)][0]
    torch.manual_seed(999)
    assert torch.equal(a, ds[(2, 5)][0])
    assert not torch.equal(a, ds[(3, 5)][0])
    before = torch.get_rng_state()
    ds[(4, 1)]
    assert torch.equal(before, torch.get_rng_state())  # the training process's RNG is untouched
    plain = ImageTreeDataset(
        str(tree / "train"), paths, np.zeros(8, np.int64), train_transform(32, None), seed=0, random=True
    )
    differs = sum(not torch.equal(ds[(0, i)][0], plain[(0, i)][0]) for i in range(8))
    assert differs >= 6  # RandAugment is on (an op can be the identity, hence not 8)


def test_workers_resume_and_ranks_give_identical_batches(tree):
    ref = list(build(tree, randaugment_magnitude=9).train.batches(1, return_indices=True))
    b2 = build(tree, num_workers=2, randaugment_magnitude=9)
    par = list(b2.train.batches(1, return_indices=True))
    assert len(par) == len(ref) == 5
    for (x0, y0, i0), (x1, y1, i1) in zip(ref, par):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(i0, i1)
    assert b2.train.loader.num_workers == 2
    tail = list(b2.train.batches(1, start_step=3, return_indices=True))  # persistent workers reused
    gen = b2.train.batches(1)
    next(gen)
    gen.close()  # abandon an epoch midway: the next pass must not see its prefetched batches
    assert len(tail) == 2 and all(torch.equal(a[0], c[0]) for a, c in zip(ref[3:], tail))
    again = list(b2.train.batches(1, start_step=1, return_indices=True))
    assert len(again) == 4 and all(torch.equal(a[2], c[2]) for a, c in zip(ref[1:], again))
    other = next(b2.train.batches(2, return_indices=True))
    assert not torch.equal(other[2], ref[0][2])
    vals = [torch.cat([x for x, _ in b.val]) for b in (b2, build(tree))]
    assert torch.equal(*vals)
    # two ranks of 2: disjoint halves of the same global batch of 4
    ranks = [build(tree, batch_size=2, rank=r, world_size=2, cfg={"train_subset": 16}) for r in range(2)]
    single = build(tree, cfg={"train_subset": 16})
    r0, r1 = (list(r.train.batches(0, return_indices=True)) for r in ranks)
    s = list(single.train.batches(0, return_indices=True))
    assert len(s) == 4
    for (xa, _, ia), (xb, _, ib), (xs, _, is_) in zip(r0, r1, s):
        assert xa.shape[0] == 2 and not set(ia.tolist()) & set(ib.tolist())
        assert torch.equal(torch.cat([ia, ib]), is_) and torch.equal(torch.cat([xa, xb]), xs)


def test_train_subset_spans_classes_and_val_can_be_left_out(tree):
    b = build(tree, cfg={"train_subset": 8}, for_minival_only=True)
    assert b.val is None and b.train_size == 8
    labels = torch.cat([y for _, y in b.train.batches(0)])
    assert len(set(labels.tolist())) >= 2


def test_missing_split_dir_is_named(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"data.root=.* has no val/"):
        build(tmp_path)
