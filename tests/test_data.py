"""Tests of dropnet_tf.data: splits and scaling (DropNet Section 3.2), file formats, sources.

Everything runs offline: real data only from scikit-learn's embedded digits and Debian's
dataset-fashion-mnist package; every other format is checked on small synthetic files written
in the official layouts under tmp_path.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import dropnet_tf.data.tfds as data_module
from dropnet_tf.data import (
    DATASETS,
    Dataset,
    DatasetFormatError,
    DatasetUnavailableError,
    load_dataset,
    read_idx,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """No test may see the user's DROPNET_DATA_DIR, TFDS data, Keras or dropnet_tf cache."""
    monkeypatch.delenv("DROPNET_DATA_DIR", raising=False)
    monkeypatch.setenv("DROPNET_CACHE_DIR", str(tmp_path_factory.mktemp("dropnet_cache")))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path_factory.mktemp("tfds_empty")))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home_empty")))


def _check_arrays(ds: Dataset, shape: tuple, num_classes: int) -> None:
    assert ds.input_shape == shape
    assert ds.num_classes == num_classes
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == shape and y.ndim == 1 and len(x) == len(y)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert 0 <= y.min() and y.max() < num_classes


# --------------------------------------------------------------------------------------------
# digits (scikit-learn, always available)
# --------------------------------------------------------------------------------------------


def test_digits_sizes_dtypes_and_range():
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.source == "sklearn"
    _check_arrays(ds, (8, 8, 1), 10)
    assert len(ds.y_test) == 360  # stratified 20 % of 1797
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert len(ds.y_val) == 144  # ceil(0.1 * 1437)
    assert ds.x_train.max() == 1.0  # values 0..16 divided by 16
    all_values = np.unique(np.concatenate([ds.x_train.ravel(), ds.x_test.ravel()]) * 16)
    np.testing.assert_allclose(all_values, np.round(all_values))


def test_digits_splits_are_stratified():
    from sklearn.datasets import load_digits

    full = np.bincount(load_digits().target, minlength=10) / 1797
    ds = load_dataset("digits")
    for y in (ds.y_train, ds.y_val, ds.y_test):
        proportions = np.bincount(y, minlength=10) / len(y)
        assert np.abs(proportions - full).max() <= 0.02


def test_digits_is_deterministic_per_seed():
    a, b = load_dataset("digits", split_seed=3), load_dataset("digits", split_seed=3)
    c = load_dataset("digits", split_seed=4)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, f"x_{split}"), getattr(b, f"x_{split}"))
        np.testing.assert_array_equal(getattr(a, f"y_{split}"), getattr(b, f"y_{split}"))
    assert not np.array_equal(a.y_test, c.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_digits_validation_fraction():
    ds = load_dataset("digits", validation_fraction=0.5)
    assert abs(len(ds.y_val) - len(ds.y_train)) <= 1


# --------------------------------------------------------------------------------------------
# Fashion-MNIST from the Debian package, found with no configuration
# --------------------------------------------------------------------------------------------


def test_fashion_mnist_from_debian_package():
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"{DEBIAN_FASHION_MNIST} absent (apt install dataset-fashion-mnist)")
    ds = load_dataset("fashion_mnist")
    assert ds.source == f"local:{DEBIAN_FASHION_MNIST}"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (54000, 6000, 10000)
    _check_arrays(ds, (28, 28, 1), 10)
    assert np.bincount(ds.y_train).tolist() == [5400] * 10
    assert np.bincount(ds.y_val).tolist() == [600] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.x_train.max() == 1.0 and ds.x_test.min() == 0.0


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    dtype = np.dtype(">i4") if array.dtype == np.int32 else np.dtype(np.uint8)
    header = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = _idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    ints = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    np.testing.assert_array_equal(read_idx(_write_idx(tmp_path / "img", images, gz)), images)
    np.testing.assert_array_equal(read_idx(_write_idx(tmp_path / "lab", labels, gz)), labels)
    read = read_idx(_write_idx(tmp_path / "int", ints, gz))  # big-endian on disk
    np.testing.assert_array_equal(read, ints)
    assert read.shape == (2, 3)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects_bad_magic(tmp_path, gz):
    data = bytearray(_idx_bytes(np.zeros((2, 2, 2), np.uint8)))
    data[0] = 0x42
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    with pytest.raises(DatasetFormatError, match="magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_truncated_data(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(_idx_bytes(np.zeros((4, 3, 3), np.uint8))[:-5])
    with pytest.raises(DatasetFormatError, match="size mismatch"):
        read_idx(path)


def _write_mnist_folder(folder: Path, gz_train: bool = True, gz_test: bool = False) -> None:
    """10 classes x 10 training images of 6x5 pixels whose value encodes the label."""
    folder.mkdir(parents=True, exist_ok=True)
    y_train = np.repeat(np.arange(10, dtype=np.uint8), 10)
    x_train = np.broadcast_to((y_train * 20)[:, None, None], (100, 6, 5)).copy()
    y_test = np.arange(10, dtype=np.uint8)[::-1].copy()
    x_test = np.broadcast_to((y_test * 20 + 5)[:, None, None], (10, 6, 5)).copy()
    x_test[0, 2, 3] = 255
    _write_idx(folder / "train-images-idx3-ubyte", x_train, gz_train)
    _write_idx(folder / "train-labels-idx1-ubyte", y_train, gz_train)
    _write_idx(folder / "t10k-images-idx3-ubyte", x_test, gz_test)
    _write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz_test)


def test_mnist_from_idx_folder(tmp_path):
    _write_mnist_folder(tmp_path / "mnist")
    ds = load_dataset("mnist", data_dir=tmp_path, source="local")
    assert ds.source == f"local:{tmp_path / 'mnist'}"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (90, 10, 10)
    _check_arrays(ds, (6, 5, 1), 10)
    assert np.bincount(ds.y_val).tolist() == [1] * 10
    # every image still carries its own label after the shuffled split
    np.testing.assert_allclose(ds.x_train[:, 0, 0, 0], ds.y_train * 20 / 255, rtol=1e-6)
    np.testing.assert_allclose(ds.x_val[:, 0, 0, 0], ds.y_val * 20 / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, np.arange(10)[::-1])  # test order kept
    assert ds.x_test[0, 2, 3, 0] == 1.0


def test_idx_folder_found_through_env_variable(tmp_path, monkeypatch):
    _write_mnist_folder(tmp_path / "fashion-mnist", gz_train=False, gz_test=True)
    monkeypatch.setenv("DROPNET_DATA_DIR", str(tmp_path))
    ds = load_dataset("fashion_mnist", source="local")
    assert ds.source == f"local:{tmp_path / 'fashion-mnist'}"
    assert len(ds.y_train) == 90


def test_data_dir_may_be_the_dataset_folder_itself(tmp_path):
    _write_mnist_folder(tmp_path)
    assert load_dataset("mnist", data_dir=tmp_path).source == f"local:{tmp_path}"


def test_incomplete_idx_folder_is_reported(tmp_path):
    _write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetUnavailableError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=tmp_path, source="local")


def test_corrupt_idx_file_in_dataset_folder_raises(tmp_path):
    _write_mnist_folder(tmp_path / "mnist", gz_test=False)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x56\x78rubbish")
    with pytest.raises(DatasetFormatError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------

# The marked pixel of test record 0: row index c*1024 + h*32 + w in the channel-major layout.
H, W, C = 3, 17, 2


def _cifar_records(labels: np.ndarray, first_test: bool = False) -> np.ndarray:
    """Rows (N, 3072) whose red channel encodes the label; optionally mark one pixel."""
    rows = np.zeros((len(labels), 3, 32, 32), dtype=np.uint8)
    rows[:, 0] = (labels * 2 + 1)[:, None, None]  # channel 0 = red
    rows[:, 1] = 7
    rows = rows.reshape(len(labels), 3072)
    if first_test:
        rows[0, C * 1024 + H * 32 + W] = 255
    return rows


def _batch_labels(num_classes: int, per_class: int, seed: int) -> np.ndarray:
    labels = np.repeat(np.arange(num_classes), per_class)
    return np.random.default_rng(seed).permutation(labels)


def _check_cifar(ds: Dataset, num_classes: int, n_train_total: int, n_test: int) -> None:
    _check_arrays(ds, (32, 32, 3), num_classes)
    assert len(ds.y_train) + len(ds.y_val) == n_train_total and len(ds.y_test) == n_test
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        np.testing.assert_allclose(x[:, 5, 9, 0], (y * 2 + 1) / 255, rtol=1e-6)
        np.testing.assert_allclose(x[:, 30, 1, 1], 7 / 255, rtol=1e-6)
    marked = np.argwhere(ds.x_test[0] == 1.0)
    assert marked.tolist() == [[H, W, C]]


def _pickle(path: Path, obj) -> None:
    """Protocol-2 pickle naming NumPy's module as the official (NumPy 1.x era) files do."""
    data = pickle.dumps(obj, protocol=2)
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def _write_cifar10_python(folder: Path) -> np.ndarray:
    folder.mkdir(parents=True)
    for i in range(1, 6):
        labels = _batch_labels(10, 2, seed=i)
        _pickle(
            folder / f"data_batch_{i}",
            {b"batch_label": b"training batch", b"labels": labels.tolist(),
             b"data": _cifar_records(labels), b"filenames": [b"x.png"] * len(labels)},
        )
    test_labels = np.array([4, 0, 9, 1, 3])
    _pickle(folder / "test_batch",
            {b"labels": test_labels.tolist(), b"data": _cifar_records(test_labels, True)})
    return test_labels


def test_cifar10_python_version(tmp_path):
    test_labels = _write_cifar10_python(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=tmp_path, source="local")
    assert ds.source == f"local:{tmp_path / 'cifar-10-batches-py'}"
    _check_cifar(ds, 10, 100, 5)
    assert len(ds.y_val) == 10 and np.bincount(ds.y_val).tolist() == [1] * 10
    np.testing.assert_array_equal(ds.y_test, test_labels)


def test_cifar10_binary_version(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        labels = _batch_labels(10, 2, seed=10 + i)
        records = np.concatenate([labels[:, None].astype(np.uint8), _cifar_records(labels)], 1)
        records.tofile(folder / f"data_batch_{i}.bin")
    test_labels = np.array([2, 8, 5])
    records = np.concatenate(
        [test_labels[:, None].astype(np.uint8), _cifar_records(test_labels, True)], 1
    )
    records.tofile(folder / "test_batch.bin")
    (folder / "batches.meta.txt").write_text("airplane\n")
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.source == f"local:{folder}"
    _check_cifar(ds, 10, 100, 3)
    np.testing.assert_array_equal(ds.y_test, test_labels)


def test_cifar10_binary_with_wrong_record_size(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        np.zeros(3073 * 2 + 1, np.uint8).tofile(folder / name)
    with pytest.raises(DatasetFormatError, match="3073-byte"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar100_python_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = _batch_labels(100, 2, seed=0)
    _pickle(folder / "train", {b"fine_labels": fine.tolist(),
                               b"coarse_labels": (fine // 5).tolist(),
                               b"data": _cifar_records(fine)})
    test_fine = np.array([99, 0, 42])
    _pickle(folder / "test", {b"fine_labels": test_fine.tolist(),
                              b"coarse_labels": (test_fine // 5).tolist(),
                              b"data": _cifar_records(test_fine, True)})
    ds = load_dataset("cifar100", data_dir=tmp_path, validation_fraction=0.5)
    _check_cifar(ds, 100, 200, 3)
    np.testing.assert_array_equal(ds.y_test, test_fine)
    assert np.bincount(ds.y_train, minlength=100).tolist() == [1] * 100


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name, fine, mark in (("train.bin", _batch_labels(100, 2, 1), False),
                             ("test.bin", np.array([7, 63]), True)):
        coarse = (fine // 5).astype(np.uint8)
        np.concatenate([coarse[:, None], fine[:, None].astype(np.uint8),
                        _cifar_records(fine, mark)], 1).tofile(folder / name)
    ds = load_dataset("cifar100", data_dir=tmp_path, validation_fraction=0.5)
    _check_cifar(ds, 100, 200, 2)
    np.testing.assert_array_equal(ds.y_test, [7, 63])


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path, capsys):
    _write_cifar10_python(tmp_path / "cifar-10-batches-py")
    _pickle(tmp_path / "cifar-10-batches-py" / "data_batch_3", {b"data": _Evil()})
    with pytest.raises(DatasetFormatError, match="not allowed"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert "must never run" not in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Tiny ImageNet
# --------------------------------------------------------------------------------------------

WNIDS = ["n03000000", "n01000000", "n02000000"]  # not sorted on purpose


def _class_value(wnid: str) -> int:
    return 40 + 80 * sorted(WNIDS).index(wnid)  # sorted position -> solid grey level


def _write_tiny_imagenet(root: Path) -> list[tuple[str, str]]:
    from PIL import Image

    (root / "wnids.txt").parent.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(10):
            image = np.full((64, 64, 3), _class_value(wnid), np.uint8)
            mode = "L" if i == 0 else "RGB"  # one grayscale JPEG per class
            Image.fromarray(image[..., 0] if mode == "L" else image, mode).save(
                folder / f"{wnid}_{i}.JPEG", quality=95
            )
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True)
    val = [(f"val_{i}.JPEG", WNIDS[i % 3]) for i in range(6)]
    for filename, wnid in val:
        Image.fromarray(np.full((64, 64, 3), _class_value(wnid), np.uint8)).save(
            root / "val" / "images" / filename, quality=95
        )
    (root / "val" / "val_annotations.txt").write_text(
        "".join(f"{f}\t{w}\t0\t0\t63\t63\n" for f, w in val)
    )
    (root / "test" / "images").mkdir(parents=True)  # unlabelled official test set: ignored
    return val


def test_tiny_imagenet_folder(tmp_path):
    val = _write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    ds = load_dataset("tiny_imagenet", data_dir=tmp_path)
    assert ds.source == f"local:{tmp_path / 'tiny-imagenet-200'}"
    _check_arrays(ds, (64, 64, 3), 3)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (27, 3, 6)
    assert np.bincount(ds.y_train).tolist() == [9, 9, 9]
    # labels follow the sorted wnid order; the official val folder is the test set, in order
    np.testing.assert_array_equal(ds.y_test, [sorted(WNIDS).index(w) for _, w in val])
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        expected = (40 + 80 * y) / 255
        np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), expected, atol=3 / 255)
        # grayscale images became RGB with three equal channels
        np.testing.assert_allclose(x[..., 0], x[..., 2], atol=3 / 255)


def test_tiny_imagenet_unknown_wnid_in_annotations(tmp_path):
    _write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    with open(tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt", "a") as f:
        f.write("val_9.JPEG\tn09999999\t0\t0\t1\t1\n")
    with pytest.raises(DatasetFormatError, match="n09999999"):
        load_dataset("tiny_imagenet", data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# tensorflow-datasets source (a stand-in module: no TensorFlow-Datasets data exists offline)
# --------------------------------------------------------------------------------------------


def test_tfds_source_uses_prepared_dataset(tmp_path, monkeypatch):
    (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)
    (tmp_path / "mnist" / "3.0.1" / "dataset_info.json").write_text("{}")
    calls = []
    y_train = np.repeat(np.arange(10), 10)
    x_train = (y_train[:, None, None, None] * np.ones((1, 4, 4, 1))).astype(np.uint8)
    y_test = np.arange(10)
    x_test = np.full((10, 4, 4, 1), 255, np.uint8)

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        return [(x_train, y_train), (x_test, y_test)]

    fake = types.SimpleNamespace(load=fake_load, as_numpy=lambda tree: tree)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    ds = load_dataset("mnist", source="tfds")
    assert ds.source == f"tfds:{tmp_path}"
    assert calls == [("mnist", dict(split=["train", "test"], batch_size=-1, as_supervised=True,
                                    data_dir=str(tmp_path), download=False))]
    _check_arrays(ds, (4, 4, 1), 10)
    np.testing.assert_allclose(ds.x_train[:, 0, 0, 0], ds.y_train / 255, rtol=1e-6)
    assert ds.x_test.min() == 1.0


def test_tfds_not_prepared_does_not_import_tfds(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # any import would fail
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar100", data_dir=tmp_path, source="tfds", download=False)
    assert f"'cifar100' not prepared in {tmp_path} and download=False" in str(info.value)


def test_tfds_auto_download_offline_fails_fast_without_importing_tfds(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    monkeypatch.setattr(data_module, "_host_resolves", lambda host, timeout=2.0: False)
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar100", data_dir=tmp_path, source="tfds")
    assert "does not resolve (offline)" in str(info.value)


def test_tfds_auto_download_when_online(tmp_path, monkeypatch):
    calls = []

    def fake_load(name, **kwargs):
        calls.append(kwargs["download"])
        y = np.repeat(np.arange(10), 10)
        return [(np.zeros((100, 4, 4, 1), np.uint8), y), (np.zeros((10, 4, 4, 1), np.uint8), np.arange(10))]

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(load=fake_load, as_numpy=lambda t: t))
    monkeypatch.setattr(data_module, "_host_resolves", lambda host, timeout=2.0: True)
    load_dataset("mnist", data_dir=tmp_path, source="tfds")
    assert calls == [True]
    with pytest.raises(ValueError, match="'sometimes'"):
        load_dataset("mnist", data_dir=tmp_path, download="sometimes")


# --------------------------------------------------------------------------------------------
# Dataset.subset
# --------------------------------------------------------------------------------------------


def test_subset_is_stratified_and_respects_caps():
    ds = load_dataset("digits")
    small = ds.subset(max_train=200, max_test=50, seed=1)
    assert (len(small.y_train), len(small.y_val), len(small.y_test)) == (200, 144, 50)
    assert small.x_train.shape == (200, 8, 8, 1) and small.x_train.dtype == np.float32
    assert small.name == ds.name and small.num_classes == 10
    for full_y, sub_y, cap in ((ds.y_train, small.y_train, 200), (ds.y_test, small.y_test, 50)):
        expected = np.bincount(full_y, minlength=10) * cap / len(full_y)
        assert np.abs(np.bincount(sub_y, minlength=10) - expected).max() < 1.0
    # rows are real rows of the original split (same image with the same label)
    rows = {(bytes(x.tobytes()), int(y)) for x, y in zip(ds.x_train, ds.y_train)}
    assert all((bytes(x.tobytes()), int(y)) in rows for x, y in zip(small.x_train, small.y_train))
    again = ds.subset(max_train=200, max_test=50, seed=1)
    np.testing.assert_array_equal(again.x_train, small.x_train)
    other = ds.subset(max_train=200, max_test=50, seed=2)
    assert not np.array_equal(other.x_train, small.x_train)
    assert len(ds.subset(max_train=10**6).y_train) == len(ds.y_train)


@pytest.mark.parametrize("cap", [0, -3, 2.5])
def test_subset_rejects_bad_caps(cap):
    with pytest.raises(ValueError, match="max_val"):
        load_dataset("digits").subset(max_val=cap)


# --------------------------------------------------------------------------------------------
# Bad inputs and unavailable data
# --------------------------------------------------------------------------------------------


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="'imagenet21k'") as info:
        load_dataset("imagenet21k")
    assert all(name in str(info.value) for name in DATASETS)


def test_unknown_source():
    with pytest.raises(ValueError, match="'internet'") as info:
        load_dataset("mnist", source="internet")
    assert all(s in str(info.value) for s in ("auto", "local", "tfds", "sklearn"))


def test_source_that_cannot_provide_the_dataset():
    with pytest.raises(ValueError, match="'sklearn' cannot provide dataset 'mnist'"):
        load_dataset("mnist", source="sklearn")
    with pytest.raises(ValueError, match="'tfds' cannot provide dataset 'tiny_imagenet'"):
        load_dataset("tiny_imagenet", source="tfds")


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan")])
def test_validation_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match="validation_fraction") as info:
        load_dataset("digits", validation_fraction=fraction)
    assert repr(fraction) in str(info.value)


def test_unavailable_local_only(tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10", data_dir=tmp_path, source="local")
    message = str(info.value)
    assert "'cifar10'" in message and "- local: no CIFAR-10" in message
    assert str(tmp_path) in message
    assert "- tfds" not in message
    assert "DROPNET_DATA_DIR" in message and "cifar-10-batches-py" in message
    assert info.value.dataset == "cifar10" and [s for s, _ in info.value.attempts] == ["local"]


def test_unavailable_auto_fails_fast_and_lists_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPNET_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data_module, "_host_resolves", lambda host, timeout=2.0: False)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10")
    assert time.perf_counter() - start < 20
    message = str(info.value)
    assert "- local: no CIFAR-10" in message and str(tmp_path) in message
    assert "- tfds: 'cifar10' not prepared in" in message and "offline" in message
    assert "download=True" in message  # how to get it on a networked machine
    assert [s for s, _ in info.value.attempts] == ["local", "tfds"]


def test_unavailable_tiny_imagenet_explains_tfds_skip(tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("tiny_imagenet", data_dir=tmp_path / "missing")
    message = str(info.value)
    assert "does not exist" in message and "tiny-imagenet-200" in message
    assert "not in tensorflow-datasets" in message


def test_dataset_rejects_mismatched_arrays():
    x = np.zeros((3, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="x_val has 3 samples but y_val has 2"):
        Dataset("d", "test", x, np.zeros(3, np.int64), x, np.zeros(2, np.int64), x,
                np.zeros(3, np.int64), 1)


def test_default_split_is_sklearns_stratified_split_with_seed_42():
    """The split the paper scripts get without options: 20 % test hold-out for digits, then a
    10 % stratified validation split, both train_test_split(..., random_state=42)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    rest, test = train_test_split(np.arange(len(bunch.target)), test_size=0.2, stratify=bunch.target, random_state=42)
    train, val = train_test_split(rest, test_size=0.1, stratify=bunch.target[rest], random_state=42)
    ds = load_dataset("digits")
    for split, index in (("train", train), ("val", val), ("test", test)):
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), bunch.target[index])
        np.testing.assert_array_equal(getattr(ds, f"x_{split}")[..., 0] * 16, bunch.images[index])
    other = load_dataset("digits", split_seed=0)
    assert not np.array_equal(other.y_val, ds.y_val)
