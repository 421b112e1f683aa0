"""Tests of the image-folder datasets: ``cifar10_jpeg`` and :func:`read_image_folder`.

Every folder is synthetic, written under tmp_path: ten class folders of tiny 32x32 images
(PNG, so pixels can be compared exactly; one test uses JPEG).  The cache goes to a temporary
DROPNET_CACHE_DIR, never to the user's.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

import dropnet_tf.data.image_folder as data_module
from dropnet_tf.data import (
    DatasetFormatError,
    DatasetUnavailableError,
    default_cache_dir,
    load_dataset,
    read_image_folder,
)

# Not sorted on purpose: labels must follow the sorted names (= the official CIFAR-10 order).
CLASSES = ["truck", "airplane", "bird", "automobile", "cat", "deer", "dog", "frog", "horse", "ship"]
N_TRAIN, N_TEST = 10, 2  # per class: 100 training images, so the 10 % split has one per class


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("DROPNET_DATA_DIR", raising=False)
    monkeypatch.setenv("DROPNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home_empty")))


def _image(rng) -> np.ndarray:
    return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _write_folder(root: Path, seed: int = 0, suffix: str = ".png") -> dict[str, list[np.ndarray]]:
    """``root/{train,test}/<class>/NNNN.png``; returns the images per split, in sorted order."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "test": []}
    for split, count in (("train", N_TRAIN), ("test", N_TEST)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = _image(rng)
                options = {"quality": 100, "subsampling": 0} if suffix == ".jpg" else {}
                Image.fromarray(image).save(folder / f"{i:04d}{suffix}", **options)
                written[split].append((sorted(CLASSES).index(name), i, image))
    return {
        split: [img for *_, img in sorted(items, key=lambda t: t[:2])]
        for split, items in written.items()
    }


def _cache_files() -> list[Path]:
    return sorted(default_cache_dir().glob("**/*.npz"))


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _by_bytes(images: list[np.ndarray]) -> dict[bytes, int]:
    return {img.tobytes(): k // N_TRAIN for k, img in enumerate(images)}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def test_cifar10_jpeg_from_png_folder_labels_splits_and_exact_pixels(tmp_path):
    images = _write_folder(tmp_path / "cifar10_jpeg")
    ds = load_dataset("cifar10_jpeg", data_dir=tmp_path)

    assert ds.name == "cifar10_jpeg" and ds.source == f"local:{tmp_path / 'cifar10_jpeg'}"
    assert ds.input_shape == (32, 32, 3) and ds.num_classes == 10
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (90, 10, 20)
    assert np.bincount(ds.y_train).tolist() == [9] * 10  # stratified 90/10
    assert np.bincount(ds.y_val).tolist() == [1] * 10
    assert np.bincount(ds.y_test).tolist() == [2] * 10
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0

    # The test set keeps the listing order: class by class (sorted names), files sorted.
    expected_test = np.stack(images["test"])
    np.testing.assert_array_equal(ds.y_test, np.repeat(np.arange(10), N_TEST))
    np.testing.assert_array_equal(ds.x_test, expected_test.astype(np.float32) / np.float32(255))

    # Train + val are exactly the training images, each once, with its folder's label.
    owner = _by_bytes(images["train"])
    seen = []
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        pixels = np.rint(x * 255).astype(np.uint8)
        np.testing.assert_array_equal(x, pixels.astype(np.float32) / np.float32(255))
        for image, label in zip(pixels, y):
            assert owner[image.tobytes()] == label
            seen.append(image.tobytes())
    assert sorted(seen) == sorted(owner)


def test_split_follows_split_seed_and_validation_fraction(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    a = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    b = load_dataset("cifar10_jpeg", data_dir=tmp_path, split_seed=7)
    assert not np.array_equal(a.x_val, b.x_val)
    c = load_dataset("cifar10_jpeg", data_dir=tmp_path, validation_fraction=0.2)
    assert (len(c.y_train), len(c.y_val)) == (80, 20)


def test_data_dir_may_be_the_folder_itself(tmp_path):
    _write_folder(tmp_path / "elsewhere")
    ds = load_dataset("cifar10_jpeg", data_dir=tmp_path / "elsewhere")
    assert ds.source == f"local:{tmp_path / 'elsewhere'}" and len(ds.y_test) == 20


def test_found_through_dropnet_data_dir(tmp_path, monkeypatch):
    _write_folder(tmp_path / "cifar10_jpeg")
    monkeypatch.setenv("DROPNET_DATA_DIR", str(tmp_path))
    assert load_dataset("cifar10_jpeg").source == f"local:{tmp_path / 'cifar10_jpeg'}"


def test_jpeg_pixels_are_pillows_decode(tmp_path):
    """JPEGs decode as Pillow (libjpeg's accurate IDCT) decodes them, close to the originals."""
    from PIL import Image

    images = _write_folder(tmp_path, suffix=".jpg")
    x, y, classes = read_image_folder(tmp_path / "test", (32, 32))
    assert classes == sorted(CLASSES)
    paths = sorted((tmp_path / "test").glob("*/*.jpg"))
    expected = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    np.testing.assert_array_equal(x, expected)
    difference = np.abs(x.astype(int) - np.stack(images["test"]).astype(int))
    assert difference.mean() < 2.0  # quality 100, no chroma subsampling


def test_read_image_folder_grayscale_nested_and_explicit_classes(tmp_path):
    """Tiny ImageNet's layout: <class>/images/*.JPEG, classes given, other files ignored."""
    from PIL import Image

    for value, name in ((10, "b"), (200, "a"), (99, "zz_not_asked_for")):
        folder = tmp_path / name / "images"
        folder.mkdir(parents=True)
        Image.fromarray(np.full((4, 6), value, np.uint8), "L").save(folder / "0.PNG")
        (tmp_path / name / "boxes.txt").write_text("ignored")
    x, y, classes = read_image_folder(tmp_path, (4, 6), class_names=["a", "b"])
    assert classes == ["a", "b"] and y.tolist() == [0, 1]
    assert x.shape == (2, 4, 6, 3) and x[0].min() == x[0].max() == 200 and x[1].max() == 10


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache should have served")

    monkeypatch.setattr(data_module, "_decode_images", refuse)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    _write_folder(tmp_path / "cifar10_jpeg")
    first = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    (cache,) = _cache_files()
    assert cache.parent == default_cache_dir() / "cifar10_jpeg"
    _no_decoding(monkeypatch)
    second = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(first, f"x_{split}"), getattr(second, f"x_{split}"))
        np.testing.assert_array_equal(getattr(first, f"y_{split}"), getattr(second, f"y_{split}"))
    assert _cache_files() == [cache]


def test_cache_is_invalidated_by_an_added_file(tmp_path):
    from PIL import Image

    _write_folder(tmp_path / "cifar10_jpeg")
    load_dataset("cifar10_jpeg", data_dir=tmp_path)
    (old,) = _cache_files()
    black = np.zeros((32, 32, 3), np.uint8)
    Image.fromarray(black).save(tmp_path / "cifar10_jpeg/test/cat/9999.png")
    ds = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    assert len(ds.y_test) == 21 and np.bincount(ds.y_test)[sorted(CLASSES).index("cat")] == 3
    assert ds.x_test.max(axis=(1, 2, 3)).min() == 0.0  # the black image is there
    (new,) = _cache_files()  # the stale cache of the same folder was removed
    assert new != old


def test_cache_is_invalidated_by_a_rewritten_file(tmp_path):
    from PIL import Image

    _write_folder(tmp_path / "cifar10_jpeg")
    load_dataset("cifar10_jpeg", data_dir=tmp_path)
    target = tmp_path / "cifar10_jpeg/test/airplane/0000.png"  # the first test image
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(target)
    os.utime(target, ns=(1, 10**18))  # a different modification time, whatever the clock says
    ds = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    assert np.all(ds.x_test[0] == np.float32(7) / np.float32(255))


def test_cache_dir_option_and_no_cache(tmp_path, monkeypatch):
    _write_folder(tmp_path / "cifar10_jpeg")
    load_dataset("cifar10_jpeg", data_dir=tmp_path, cache_dir=False)
    assert _cache_files() == []
    load_dataset("cifar10_jpeg", data_dir=tmp_path, cache_dir=tmp_path / "my_cache")
    assert len(list((tmp_path / "my_cache" / "cifar10_jpeg").glob("*.npz"))) == 1
    assert _cache_files() == []
    with pytest.raises(ValueError, match="cache_dir must be"):
        load_dataset("cifar10_jpeg", data_dir=tmp_path, cache_dir=True)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DROPNET_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("DROPNET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dropnet_tf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path("~/.cache/dropnet_tf").expanduser()


def test_unwritable_cache_warns_and_data_dir_is_never_written(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    before = _listing(tmp_path)
    (tmp_path / "a_file").write_text("")
    with pytest.warns(RuntimeWarning, match="could not write the dataset cache"):
        ds = load_dataset("cifar10_jpeg", data_dir=tmp_path, cache_dir=tmp_path / "a_file" / "sub")
    assert len(ds.y_test) == 20
    assert _listing(tmp_path) == sorted(before + ["a_file"])


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    first = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    (cache,) = _cache_files()
    cache.write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="ignoring unreadable dataset cache"):
        second = load_dataset("cifar10_jpeg", data_dir=tmp_path)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    assert cache.stat().st_size > 1000


# --------------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------------


def _write_archive(tmp_path: Path) -> Path:
    _write_folder(tmp_path / "src" / "cifar10_jpeg")
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "cifar10_jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10_jpeg", arcname="cifar10_jpeg")
    return data


def test_archive_is_read_in_place_and_cached(tmp_path, monkeypatch):
    data = _write_archive(tmp_path)
    before = _listing(data)
    from_archive = load_dataset("cifar10_jpeg", data_dir=data)
    assert from_archive.source == f"local:{data / 'cifar10_jpeg.tar.gz'}"
    assert _listing(data) == before  # nothing unpacked next to the archive
    (cache,) = _cache_files()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # nor in the cache
    from_folder = load_dataset("cifar10_jpeg", data_dir=tmp_path / "src", cache_dir=False)
    np.testing.assert_array_equal(from_archive.x_test, from_folder.x_test)
    np.testing.assert_array_equal(from_archive.x_train, from_folder.x_train)

    def refuse(*args, **kwargs):
        raise AssertionError("unpacked although the cache should have served")

    monkeypatch.setattr(tarfile, "open", refuse)
    _no_decoding(monkeypatch)
    again = load_dataset("cifar10_jpeg", data_dir=data / "cifar10_jpeg.tar.gz")  # the file itself
    np.testing.assert_array_equal(again.x_test, from_archive.x_test)


def test_archive_without_cache(tmp_path):
    data = _write_archive(tmp_path)
    ds = load_dataset("cifar10_jpeg", data_dir=data, cache_dir=False)
    assert len(ds.y_train) == 90 and _cache_files() == []


def test_archive_with_splits_at_its_root(tmp_path):
    """``tar czf x.tar.gz -C cifar10_jpeg .``: members ./train/<class>/..., ./test/<class>/..."""
    _write_folder(tmp_path / "src")
    with tarfile.open(tmp_path / "cifar10_jpeg.tgz", "w:gz") as tar:
        tar.add(tmp_path / "src", arcname=".")
    from_archive = load_dataset("cifar10_jpeg", data_dir=tmp_path / "cifar10_jpeg.tgz")
    from_folder = load_dataset("cifar10_jpeg", data_dir=tmp_path / "src", cache_dir=False)
    np.testing.assert_array_equal(from_archive.x_train, from_folder.x_train)
    np.testing.assert_array_equal(from_archive.y_test, from_folder.y_test)


def test_archive_with_wrong_class_count_names_the_archive(tmp_path):
    _write_folder(tmp_path / "src" / "cifar10_jpeg")
    (tmp_path / "src/cifar10_jpeg/test/truck/0000.png").unlink()
    (tmp_path / "src/cifar10_jpeg/test/truck/0001.png").unlink()
    with tarfile.open(tmp_path / "cifar10_jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10_jpeg", arcname="cifar10_jpeg")
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cifar10_jpeg.tar.gz'}: cifar10_jpeg/test: found 9")
    assert "expected 10" in message


def test_archive_that_is_not_one(tmp_path):
    (tmp_path / "cifar10_jpeg.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetFormatError, match="cifar10_jpeg.tar.gz: cannot read the archive"):
        load_dataset("cifar10_jpeg", data_dir=tmp_path)


def test_unpacked_folder_is_preferred_to_the_archive(tmp_path):
    data = _write_archive(tmp_path)
    (tmp_path / "src" / "cifar10_jpeg").rename(data / "cifar10_jpeg")
    assert load_dataset("cifar10_jpeg", data_dir=data).source == f"local:{data / 'cifar10_jpeg'}"


def test_bad_image_in_archive_names_the_member(tmp_path):
    data = _write_archive(tmp_path)
    (data / "cifar10_jpeg.tar.gz").unlink()
    (tmp_path / "src/cifar10_jpeg/train/dog/0003.png").write_bytes(b"garbage")
    with tarfile.open(data / "cifar10_jpeg.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10_jpeg", arcname="cifar10_jpeg")
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10_jpeg", data_dir=data)
    message = str(info.value)
    assert message.startswith(f"{data / 'cifar10_jpeg.tar.gz'}: cifar10_jpeg/train/dog/0003.png")
    assert "cannot decode image" in message


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path / "missing")
    message = str(info.value)
    assert f"data_dir {tmp_path / 'missing'} does not exist" in message
    assert "train/<class>/*.jpg" in message  # how to provide it
    assert "cifar10_jpeg is a local image folder only" in message  # why no tfds


def test_empty_data_dir_names_the_path_and_the_layout(tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path, source="local")
    message = str(info.value)
    assert "no cifar10_jpeg image folder (train/<class>/, test/<class>/)" in message
    assert f"data_dir={tmp_path}" in message


def test_only_train_folder_is_reported(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    for path in sorted((tmp_path / "cifar10_jpeg" / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "cifar10_jpeg" / "test").rmdir()
    with pytest.raises(DatasetUnavailableError, match=r"cifar10_jpeg: has train/ but no test/"):
        load_dataset("cifar10_jpeg", data_dir=tmp_path)


def test_wrong_class_count_names_the_path_and_counts(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    (tmp_path / "cifar10_jpeg/train/zebra").mkdir()
    (tmp_path / "cifar10_jpeg/train/cat/0000.png").rename(
        tmp_path / "cifar10_jpeg/train/zebra/0.png"
    )
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cifar10_jpeg' / 'train'}: found 11 class folders")
    assert "zebra" in message and "expected 10" in message


def test_train_and_test_classes_must_agree(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    (tmp_path / "cifar10_jpeg/test/ship").rename(tmp_path / "cifar10_jpeg/test/boat")
    with pytest.raises(DatasetFormatError, match="train/ and test/ have different class folders"):
        load_dataset("cifar10_jpeg", data_dir=tmp_path)


def test_class_folder_without_images(tmp_path):
    _write_folder(tmp_path / "cifar10_jpeg")
    for path in (tmp_path / "cifar10_jpeg/test/frog").iterdir():
        path.rename(path.with_suffix(".webp"))  # not an image suffix Keras lists
    with pytest.raises(DatasetFormatError, match=r"test: class folder\(s\) frog hold no images"):
        load_dataset("cifar10_jpeg", data_dir=tmp_path)


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_unreadable_image_names_the_file(tmp_path, content):
    _write_folder(tmp_path / "cifar10_jpeg")
    bad = tmp_path / "cifar10_jpeg/train/dog/0003.png"
    data = bad.read_bytes()
    bad.write_bytes(b"not an image at all" if content == "garbage" else data[: len(data) // 2])
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path)
    assert str(info.value).startswith(f"{bad}: cannot decode image")
    assert _cache_files() == []


def test_image_of_another_size_names_the_file(tmp_path):
    from PIL import Image

    _write_folder(tmp_path / "cifar10_jpeg")
    bad = tmp_path / "cifar10_jpeg/test/horse/0001.png"
    Image.fromarray(np.zeros((32, 31, 3), np.uint8)).save(bad)
    with pytest.raises(DatasetFormatError, match="expected a 32x32 image") as info:
        load_dataset("cifar10_jpeg", data_dir=tmp_path)
    assert str(info.value).startswith(f"{bad}:") and "got 31x32" in str(info.value)


def test_tfds_cannot_provide_cifar10_jpeg():
    with pytest.raises(ValueError, match="'tfds' cannot provide dataset 'cifar10_jpeg'"):
        load_dataset("cifar10_jpeg", source="tfds")
