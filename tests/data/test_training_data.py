"""Decode once: memory and disk pixel caches, shards, padding, skipped files and strict_data."""

import contextlib
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from vae_restore.config import DataConfig
from vae_restore.data import packing as build
from vae_restore.data.files import find_records
from vae_restore.data.image_set import decode_records, split_records
from vae_restore.data.pixel_bank import PixelBank
from vae_restore.data.sampler import CropSampler
from vae_restore.data.stage_data import Shard, load_training_data
from vae_restore.errors import DataError

from ..conftest import write_images


def config(path, **kw) -> DataConfig:
    return DataConfig(train_data=str(path), val_fraction=0.2, **kw)


@pytest.fixture
def paired(tmp_path):
    names = [f"image ({i}).png" for i in range(1, 9)]
    write_images(tmp_path / "d" / "clear", 8, size=(140, 150), names=names)
    write_images(tmp_path / "d" / "distorted", 8, size=(140, 150), seed=1, names=[n[:-4] + "_x.png" for n in names])
    return tmp_path / "d"


def test_pixel_bank_subset_and_compact_keep_each_images_pixels():
    images = [np.full((130, 140 + i, 3), i, np.uint8) for i in range(5)]
    bank = PixelBank(images, 128)
    shard = bank.subset([1, 3])
    assert len(shard) == 2 and shard.pixels is bank.pixels and shard.nbytes == 130 * (141 + 143) * 3
    compact = shard.compact()
    assert compact.pixels.shape[0] == 130 * (141 + 143)
    assert torch.equal(compact.image(0), bank.image(1)) and torch.equal(compact.image(1), bank.image(3))


def test_crops_from_the_memory_mapped_cache_equal_crops_from_memory(paired, tmp_path):
    memory = load_training_data(config(paired, pixel_cache="memory"), seed=0)
    disk = load_training_data(config(paired, pixel_cache="disk"), seed=0, cache_dir=tmp_path / "c")
    crops = [CropSampler(d.target, 128, torch.Generator().manual_seed(0), d.source).sample(8) for d in (memory, disk)]
    assert torch.equal(crops[0][0], crops[1][0]) and torch.equal(crops[0][1], crops[1][1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_crops_streamed_from_host_pixels_equal_crops_from_gpu_pixels():
    images = [np.random.default_rng(i).integers(0, 255, (140, 150, 3), dtype=np.uint8) for i in range(3)]
    on_gpu = PixelBank(images, 128).to("cuda")
    streamed = PixelBank(images, 128).to("cuda", pixels=False)
    assert streamed.pixels.device.type == "cpu"
    a = CropSampler(on_gpu, 128, torch.Generator("cuda").manual_seed(0)).sample(4)[1]
    b = CropSampler(streamed, 128, torch.Generator("cuda").manual_seed(0)).sample(4)[1]
    assert b.device.type == "cuda" and torch.equal(a, b)


def test_memory_cache_decodes_each_clear_file_once(paired, monkeypatch):
    calls = []
    real = build.decode_rgb
    monkeypatch.setattr(build, "decode_rgb", lambda p: calls.append(p) or real(p))
    write_images(paired / "distorted", 1, size=(140, 150), seed=5, names=["image (1) (2).png"])
    data = load_training_data(config(paired, pixel_cache="memory"), seed=0)
    assert len(calls) == len(set(calls))  # no file decoded twice, although image (1) has two distorted versions
    assert data.paired and data.num_images + len(data.val) == 9
    assert data.target.same_geometry(data.source)


def test_disk_cache_is_reused_without_decoding_and_rebuilt_when_content_changes(paired, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_training_data(config(paired, pixel_cache="disk"), seed=0, cache_dir=cache)
    folders = sorted(cache.glob("pixels-*"))
    assert len(folders) == 2 and all((f / "index.json").is_file() for f in folders)  # training and validation

    def refuse(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(build, "decode_rgb", refuse)
    second = load_training_data(config(paired, pixel_cache="disk"), seed=0, cache_dir=cache)
    assert torch.equal(first.target.pixels, second.target.pixels)
    assert torch.equal(first.source.pixels, second.source.pixels)

    monkeypatch.undo()
    Image.new("RGB", (140, 150), (9, 9, 9)).save(sorted((paired / "clear").iterdir())[0])
    load_training_data(config(paired, pixel_cache="disk"), seed=0, cache_dir=cache)
    assert len(list(cache.glob("pixels-*"))) == 3


def test_disk_and_memory_caches_hold_the_same_pixels(paired, tmp_path):
    memory = load_training_data(config(paired, pixel_cache="memory"), seed=0)
    disk = load_training_data(config(paired, pixel_cache="disk"), seed=0, cache_dir=tmp_path / "c")
    assert torch.equal(memory.target.pixels, disk.target.pixels)
    assert torch.equal(memory.target.heights, disk.target.heights)


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_each_process_samples_its_own_shard(paired, tmp_path, mode):
    whole = load_training_data(config(paired, pixel_cache=mode), seed=0, cache_dir=tmp_path / "c")
    shards = [
        load_training_data(config(paired, pixel_cache=mode), seed=0, cache_dir=tmp_path / "c", shard=Shard(i, 2))
        for i in range(2)
    ]
    assert [len(s.target) for s in shards] == [3, 3] and len(whole.target) == 6
    for i, s in enumerate(shards):
        for j in range(len(s.target)):
            assert torch.equal(s.target.image(j), whole.target.image(i + 2 * j))


def test_disk_cache_is_built_by_the_first_process_and_mapped_by_the_others(paired, tmp_path, caplog):
    order = []

    @contextlib.contextmanager
    def main_first():
        order.append("enter")
        yield
        order.append("leave")

    with caplog.at_level(logging.INFO):
        for i in range(3):
            cfg = config(paired, pixel_cache="auto")
            load_training_data(cfg, 0, cache_dir=tmp_path / "c", shard=Shard(i, 3), main_first=main_first)
    assert caplog.text.count("decoding 6 images into the pixel cache") == 1  # auto picks disk for several processes
    assert order == ["enter", "leave"] * 3


def test_small_images_are_reflect_padded_and_counted(tmp_path):
    write_images(tmp_path, 3, size=(160, 200))
    write_images(tmp_path, 2, size=(40, 90), seed=3, names=["tiny_a.png", "tiny_b.png"])
    data = load_training_data(DataConfig(train_data=str(tmp_path), val_data=str(tmp_path)), 0)
    assert sorted(p.rsplit("/", 1)[1] for p in data.padded) == ["tiny_a.png", "tiny_b.png"]
    assert int(data.target.heights.min()) == 128 and int(data.target.widths.min()) == 128
    original = np.asarray(Image.open(tmp_path / "tiny_a.png"))
    index = [i for i in range(len(data.target)) if int(data.target.heights[i]) == 128][0]
    padded = data.target.image(index).permute(1, 2, 0).numpy()
    assert np.array_equal(padded[44:84, 19:109], original)  # centred, then mirrored outwards
    assert np.array_equal(padded[43, 19:109], original[1]) and np.array_equal(padded[44:84, 18], original[:, 1])


def test_small_images_held_back_for_validation_are_reported_too(tmp_path):
    write_images(tmp_path, 3, size=(100, 100))
    data = load_training_data(DataConfig(train_data=str(tmp_path), val_fraction=0.34), 0)
    assert len(data.val.clear) == 1 and len(data.target) == 2
    assert sorted(p.rsplit("/", 1)[1] for p in data.padded) == ["img_000.png", "img_001.png", "img_002.png"]


def test_bad_files_are_skipped_and_named_unless_strict(tmp_path):
    write_images(tmp_path, 4)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    cfg = DataConfig(train_data=str(tmp_path), val_data=str(tmp_path))
    data = load_training_data(cfg, 0)
    assert len(data.target) == 4
    assert len(data.skipped) == 4  # each bad file once for train and once for val (the same folder)
    assert any("empty.png" in s for s in data.skipped) and any("text.jpg" in s for s in data.skipped)
    cfg.strict_data = True
    with pytest.raises(DataError, match=r"unreadable file\(s\) and strict_data is on") as e:
        load_training_data(cfg, 0)
    assert "empty.png" in str(e.value)


def test_embedded_training_data_checks_and_reports_its_val_data(tmp_path):
    write_images(tmp_path, 2)
    write_images(tmp_path, 1, size=(40, 90), seed=3, names=["tiny.png"])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cfg = DataConfig(train_data=None, val_data=str(tmp_path))
    data = load_training_data(cfg, 0)
    assert [p.rsplit("/", 1)[1] for p in data.padded] == ["tiny.png"]
    assert len(data.skipped) == 1 and "broken.png" in data.skipped[0]
    cfg.strict_data = True
    with pytest.raises(DataError, match=r"unreadable file\(s\) and strict_data is on") as e:
        load_training_data(cfg, 0)
    assert "broken.png" in str(e.value)


def test_disk_cache_remembers_what_it_skipped(tmp_path):
    write_images(tmp_path / "d", 3)
    (tmp_path / "d" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    cfg = DataConfig(train_data=str(tmp_path / "d"), val_data=str(tmp_path / "d"), pixel_cache="disk")
    first = load_training_data(cfg, 0, cache_dir=tmp_path / "c")
    second = load_training_data(cfg, 0, cache_dir=tmp_path / "c")
    assert first.skipped == second.skipped and any("broken.png" in s for s in second.skipped)
    index = json.loads(next((tmp_path / "c").glob("pixels-*/index.json")).read_text())
    assert len(index["skipped"]) == 1


def test_disk_cache_names_skipped_files_where_they_are_now_after_the_data_moves(tmp_path, monkeypatch):
    write_images(tmp_path / "d", 3)
    (tmp_path / "d" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    load_training_data(config(tmp_path / "d", pixel_cache="disk"), 0, cache_dir=tmp_path / "c")
    (tmp_path / "d").rename(tmp_path / "moved")

    def refuse(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(build, "decode_rgb", refuse)  # the cache (keyed by contents) is reused
    moved = load_training_data(config(tmp_path / "moved", pixel_cache="disk"), 0, cache_dir=tmp_path / "c")
    assert len(moved.skipped) == 1 and str(tmp_path / "moved" / "broken.png") in moved.skipped[0]
    assert str(tmp_path / "d") not in moved.skipped[0]


def test_paired_images_of_different_sizes_are_skipped_with_both_names(tmp_path):
    write_images(tmp_path / "clear", 2, size=(140, 140))
    write_images(tmp_path / "distorted", 1, size=(140, 140), names=["img_000.png"])
    write_images(tmp_path / "distorted", 1, size=(150, 140), names=["img_001.png"])
    images = decode_records(find_records(tmp_path))
    assert len(images) == 1
    assert "distorted/img_001.png: 140x150 but its clear image" in images.skipped[0]


def test_stage_clear_on_paired_data_decodes_only_clear_files(paired, monkeypatch):
    calls = []
    real = build.decode_rgb
    monkeypatch.setattr(build, "decode_rgb", lambda p: calls.append(p) or real(p))
    data = load_training_data(config(paired, pixel_cache="memory"), seed=0, pairs=False)
    assert data.source is None and not data.val.paired
    assert all("clear" in str(p.parent.name) for p in calls)


@pytest.mark.parametrize("seed", range(4))
def test_validation_split_keeps_all_versions_of_a_clear_image_together(paired, seed):
    for i in range(3):
        write_images(paired / "distorted", 1, size=(140, 150), seed=9 + i, names=[f"image (3) ({i}).png"])
    train, val = split_records(find_records(paired), 0.5, seed)
    assert len(train) + len(val) == 11
    assert not {r.clear for r in train} & {r.clear for r in val}
    assert len({r.clear for r in val}) == 4


def test_paired_batches_mix_in_synthetic_inputs_by_the_ratio():
    from types import SimpleNamespace

    from vae_restore.config import Config
    from vae_restore.training.trainer import Trainer

    config = Config()
    config.train.stage, config.train.train_batch_size, config.data.synthetic_ratio = "distorted", 8, 0.25
    clear, real = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    fake = SimpleNamespace(
        config=config,
        sampler=SimpleNamespace(sample=lambda n: (real, clear)),
        distort=lambda x, g: 1 - x,
        generator=None,
    )
    source, target, noise = Trainer.next_batch(fake)
    assert torch.equal(target, clear) and noise is None
    assert torch.equal(source[:2], 1 - clear[:2]) and torch.equal(source[2:], real[2:])


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_a_corrupt_file_is_never_held_back_for_validation_whatever_the_seed(tmp_path, cache):
    """Held back alone, it would leave validation with no image and stop the run; it is skipped instead."""
    write_images(tmp_path / "photos", 5, size=(140, 150))
    (tmp_path / "photos" / "zz.jpg").write_bytes(b"not a jpeg at all")
    for seed in range(12):
        data = load_training_data(
            DataConfig(train_data=str(tmp_path / "photos"), pixel_cache=cache), seed, cache_dir=tmp_path / "c"
        )
        assert len(data.val.clear) == 1 and data.num_images == 4
        assert [s.split(":")[0] for s in data.skipped] == [str(tmp_path / "photos" / "zz.jpg")]


def test_an_unreadable_version_of_a_held_back_image_keeps_its_clear_file_out_of_training():
    """Stage clear reads only the clear side: the record must follow its clear file into validation."""
    from pathlib import Path

    from vae_restore.data.files import ImageRecord
    from vae_restore.data.stage_data import split_readable

    records = [ImageRecord(Path(f"c{i}.png"), Path(f"d{i}_{v}.png")) for i in range(10) for v in (1, 2)]
    sizes = {p: 100 for r in records for p in (r.clear, r.distorted)}
    _, val = split_readable(records, sizes, 0.1, seed=0)
    held = val[0].clear
    sizes[next(r.distorted for r in records if r.clear == held)] = None  # one version of it does not open
    train, val = split_readable(records, sizes, 0.1, seed=0)
    assert held in {r.clear for r in val}
    assert held not in {r.clear for r in train}
    assert len(train) + len(val) == len(records), "the unreadable record stays, to be reported"
