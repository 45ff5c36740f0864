"""The batched decode path (``data.decode``): workers read bytes, one batched decode + per-sample
augment on a device. On CPU it must give exactly the worker (PIL) path's batches, resume included;
the CUDA run of the same comparison is in tests/test_cuda.py."""

import numpy as np
import pytest
import torch
from jpeg_trees import write_class_tree
from PIL import Image

from rsscale.config import cell_config, cell_hash, compose
from rsscale.data import build_data
from rsscale.data.config import DataConfigError, resolve_decode
from rsscale.data.imagenet import (
    ImageTreeDataset,
    LoaderEvalStream,
    LoaderTrainStream,
    collate_raw,
    decode_jpegs,
    decode_pil,
    decode_rgb,
    eval_transform,
    jpeg_components,
    load_tree,
    read_bytes,
    train_transform,
    unreadable_images,
)
from rsscale.data.registry import validate_data_cfg

CLASSES = ("a_red", "b_green")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """JPEGs of odd sizes, a greyscale one, a CMYK one and a PNG named .JPEG (libjpeg cannot read it)."""
    root = tmp_path_factory.mktemp("tree")
    splits = (("train", 10), ("val", 3))
    rng = write_class_tree(
        root, CLASSES, splits, seed=1, sizes=(36, 80), colour=220, quality=85, name="im_{i:02d}"
    )
    d = root / "train" / CLASSES[0]
    Image.fromarray(rng.integers(0, 256, (50, 41), dtype=np.uint8)).save(d / "im_90.JPEG")
    Image.fromarray(rng.integers(0, 256, (44, 52, 4), dtype=np.uint8), mode="CMYK").save(d / "im_91.JPEG")
    Image.fromarray(rng.integers(0, 256, (40, 47, 3), dtype=np.uint8)).save(d / "im_92.JPEG", format="PNG")
    return root


def _datasets(root, split, transform, random, bad_log=None):
    t = load_tree(str(root))
    paths, labels = t[f"{split}_paths"], t[f"{split}_labels"]
    kw = {"seed": 3, "random": random, "bad_log": bad_log}
    d = str(root / split)
    return ImageTreeDataset(d, paths, labels, transform, **kw), ImageTreeDataset(
        d, paths, labels, transform, raw=True, **kw
    )


def test_decode_jpegs_matches_pil_and_flags_what_it_cannot_read(tree):
    files = sorted((tree / "train" / CLASSES[0]).iterdir())
    datas = [read_bytes(str(f)) for f in files]
    assert all(d.dtype == torch.uint8 and d.dim() == 1 and len(d) > 0 for d in datas)
    out = decode_jpegs(datas, "cpu")
    assert len(out) == len(files)
    for f, d, img in zip(files, datas, out):
        assert torch.equal(decode_rgb(str(f)), decode_pil(str(f))), f.name  # the fast path is PIL's pixels
        if f.name in ("im_91.JPEG", "im_92.JPEG"):  # CMYK and a PNG: None, the caller falls back to PIL
            assert img is None and jpeg_components(d) == (4 if f.name == "im_91.JPEG" else None)
        else:
            assert img is not None and torch.equal(img, decode_pil(str(f))), f.name
            assert jpeg_components(d) == (1 if f.name == "im_90.JPEG" else 3)
    assert read_bytes(str(tree / "missing.JPEG")).numel() == 0
    assert decode_jpegs([torch.empty(0, dtype=torch.uint8)], "cpu") == [None]
    datas_l, labels, idx = collate_raw([(datas[0], 1, 7), (datas[1], 0, 8)])
    assert datas_l[1] is datas[1] and labels.tolist() == [1, 0] and idx.tolist() == [7, 8]


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_libjpeg_fast_path_is_bit_identical_to_pil(tmp_path, progressive, subsampling):
    rng = np.random.default_rng(subsampling)
    for q in (50, 95):
        h, w = rng.integers(30, 200, 2)
        low = Image.fromarray(rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8))
        arr = np.asarray(low.resize((w, h), Image.BICUBIC)).astype(int) + rng.integers(-20, 21, (h, w, 3))
        f = tmp_path / f"q{q}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(
            f, quality=q, subsampling=subsampling, progressive=progressive
        )
        assert (
            jpeg_components(read_bytes(str(f))) == 3
            and decode_jpegs([read_bytes(str(f))], "cpu")[0] is not None
        )
        assert torch.equal(decode_rgb(str(f)), decode_pil(str(f)))


def test_augment_on_hwc_memory_gives_the_contiguous_pixels(tree):
    """The decoders return HWC memory (faster transforms); the crops must equal those of the
    contiguous CHW tensors the worker path used to build, so results and hashes stay as they were."""
    files = sorted((tree / "train").glob("*/*.JPEG")) + sorted((tree / "val").glob("*/*.JPEG"))
    for tf in (train_transform(32, 9), train_transform(48, None), eval_transform(24)):
        for k, f in enumerate(files):
            img = decode_rgb(str(f))
            assert not img.is_contiguous() and img.shape[0] == 3
            outs = []
            for x in (img, img.contiguous()):
                torch.manual_seed(k)
                outs.append(tf(x))
            assert torch.equal(*outs), f.name


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_decode_train_stream_is_bit_identical_to_worker_path(tree, workers):
    ref_ds, raw_ds = _datasets(tree, "train", train_transform(32, 9), random=True)
    idx = np.arange(len(ref_ds))
    kw = {"batch_size": 4, "seed": 3, "device": torch.device("cpu"), "channels_last": True}
    ref = LoaderTrainStream(ref_ds, idx, num_workers=0, **kw)
    raw = LoaderTrainStream(raw_ds, idx, num_workers=workers, decode_on="cpu", **kw)
    assert raw.loader.num_workers == workers and raw.steps_per_epoch == ref.steps_per_epoch == 5
    for epoch, start in ((0, 0), (2, 3)):  # resume midway: the same tail
        a = list(ref.batches(epoch, start, return_indices=True))
        b = list(raw.batches(epoch, start, return_indices=True))
        assert len(a) == len(b) == 5 - start
        for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
            assert torch.equal(ia, ib) and torch.equal(ya, yb)
            assert torch.equal(xa, xb) and xb.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(next(raw.batches(0))[0], next(raw.batches(1))[0])


def test_batched_decode_eval_and_fallbacks_match_worker_path(tree, tmp_path):
    logs = (tmp_path / "ref.txt", tmp_path / "raw.txt")
    broken = tree / "train" / CLASSES[1] / "im_05.JPEG"
    good = broken.read_bytes()
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")  # unreadable: listed and substituted
    try:
        for split in ("train", "val"):
            ref_ds, _ = _datasets(tree, split, eval_transform(24), random=False, bad_log=str(logs[0]))
            _, raw_ds = _datasets(tree, split, eval_transform(24), random=False, bad_log=str(logs[1]))
            idx = np.arange(len(ref_ds))
            kw = {"batch_size": 5, "device": torch.device("cpu"), "num_workers": 0}
            a = list(LoaderEvalStream(ref_ds, idx, **kw).batches(return_indices=True))
            raw = LoaderEvalStream(raw_ds, idx, decode_on=torch.device("cpu"), **kw)
            b = list(raw.batches(return_indices=True))
            assert len(a) == len(b) == -(-len(idx) // 5)
            for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
    finally:
        broken.write_bytes(good)
    assert unreadable_images(logs[0]) == unreadable_images(logs[1]) == [str(broken)]


def test_decode_on_must_match_the_dataset_mode(tree):
    ref_ds, raw_ds = _datasets(tree, "val", eval_transform(24), random=False)
    with pytest.raises(ValueError, match="raw=True"):
        LoaderEvalStream(ref_ds, np.arange(3), batch_size=2, device="cpu", num_workers=0, decode_on="cpu")
    with pytest.raises(ValueError, match="needs decode_on"):
        LoaderEvalStream(raw_ds, np.arange(3), batch_size=2, device="cpu", num_workers=0)


def test_decode_config_key(tree):
    assert validate_data_cfg({"name": "imagenet", "root": str(tree)})["decode"] == "auto"
    with pytest.raises(DataConfigError, match=r"^data\.decode must be one of auto, cpu, cuda"):
        validate_data_cfg({"decode": "gpu"})
    assert resolve_decode("auto", "cpu") is None and resolve_decode("cpu", "cuda") is None
    assert resolve_decode("auto", "cuda") == torch.device("cuda")
    with pytest.raises(DataConfigError, match=r"^data\.decode=cuda needs a CUDA device"):
        resolve_decode("cuda", "cpu")
    cfg = {"name": "imagenet", "root": str(tree), "train_res": 32, "eval_res": 24, "num_workers": 0}
    b = build_data(cfg, batch_size=4, eval_batch_size=4, device="cpu", seed=0, for_minival_only=True)
    assert b.train.decode_on is None and not b.train.dataset.raw  # auto on CPU: today's worker path
    with pytest.raises(DataConfigError, match="data.decode=cuda"):
        build_data({**cfg, "decode": "cuda"}, batch_size=4, eval_batch_size=4, device="cpu", seed=0)
    # where the JPEGs are decoded is not a result field: the cell hash does not see it
    cells = [cell_config(compose(["data=imagenet", "data.root=/x", f"data.decode={v}"])) for v in DECODES]
    assert cells[0]["data"]["decode"] == "auto" and len({cell_hash(c) for c in cells}) == 1
    assert cell_hash(cells[0]) == cell_hash(_without_decode(cells[0]))


DECODES = ("auto", "cpu", "cuda")


def _without_decode(cell):
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in cell.items()}
    out["data"].pop("decode")
    return out
