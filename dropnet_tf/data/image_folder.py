"""Image folders (cifar10_jpeg, Tiny ImageNet): :func:`read_image_folder` and the ``.npz`` cache."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from dropnet_tf.core.io import load_npz, save_npz_atomic
from dropnet_tf.data.common import (
    CACHE_DIR_ENV,
    DatasetFormatError,
    _NotFound,
    _NUM_CLASSES,
    _Raw,
    _search_roots,
)


# ---- Image folders: cifar10_jpeg, and Tiny ImageNet's train/ ---------------------------------

#: Suffixes Keras' image-folder listing accepts (case-insensitive); other files are ignored.
_IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def _decode_images(
    paths: Sequence[str | Path], size: tuple[int, int], contents: Sequence[bytes] | None = None
) -> np.ndarray:
    """Decode image files into a uint8 ``(N, H, W, 3)`` array; grayscale/RGBA/palette -> RGB.

    With ``contents`` the images are decoded from those bytes and ``paths`` only name them.

    Pillow decodes, so JPEGs get libjpeg's accurate integer IDCT.  TensorFlow's
    ``decode_image``, which ``keras.utils.image_dataset_from_directory`` decodes with, uses
    the fast IDCT: on the CIFAR-10 JPEGs its red and blue channels come out about 1.2 grey
    levels darker on average.  A file that cannot be decoded, or whose size is not ``size``
    ``(height, width)``, raises :class:`DatasetFormatError` naming it (images are never
    resized).
    """
    from PIL import Image  # Pillow, a dependency of matplotlib

    height, width = size
    out = np.empty((len(paths), height, width, 3), dtype=np.uint8)

    def decode(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path if contents is None else io.BytesIO(contents[i])) as img:
                array = np.asarray(img.convert("RGB"))
        except Exception as error:  # noqa: BLE001 - any failure means an unreadable file
            raise DatasetFormatError(f"{path}: cannot decode image ({error})") from error
        if array.shape[:2] != (height, width):
            raise DatasetFormatError(
                f"{path}: expected a {width}x{height} image (width x height), "
                f"got {array.shape[1]}x{array.shape[0]}"
            )
        out[i] = array

    pool = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))
    try:
        for _ in pool.map(decode, range(len(paths))):
            pass
    finally:  # on the first error, drop the files not yet started
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _list_image_folder(
    directory: Path,
    size: tuple[int, int],
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> tuple[list[str], np.ndarray, list[str]]:
    """``(paths, labels, class names)`` of ``directory/<class>/**/<image>``, as Keras lists it.

    :func:`keras.utils.image_dataset_from_directory` does the listing (``labels="inferred"``,
    ``shuffle=False``): class ``k`` is the ``k``-th of ``class_names``, by default the sorted
    non-hidden sub-folder names; the files come class by class, sorted, sub-folders included.
    Its dataset is only built, never iterated: the pixels come from :func:`_decode_images`.
    """
    from dropnet_tf.core.backend import KERAS_MAJOR, keras

    if not directory.is_dir():
        raise DatasetFormatError(f"{directory}: no such folder")
    if class_names is not None:
        missing = [c for c in class_names if not (directory / c).is_dir()]
        if missing:
            raise DatasetFormatError(
                f"{directory}: missing class folder(s) {', '.join(missing)} "
                f"({len(missing)} of the {len(class_names)} expected)"
            )
    options = {"verbose": False} if KERAS_MAJOR >= 3 else {}
    try:
        listing = keras.utils.image_dataset_from_directory(
            str(directory),
            labels="inferred",
            label_mode="int",
            class_names=None if class_names is None else list(class_names),
            image_size=size,
            shuffle=False,
            **options,
        )
    except ValueError as error:  # Keras: no image files at all
        raise DatasetFormatError(
            f"{directory}: no images in class folders ({error}); expected <class>/ folders of "
            f"{'/'.join(_IMAGE_SUFFIXES)} files"
        ) from error
    classes = [str(c) for c in listing.class_names]
    paths = [str(p) for p in listing.file_paths]
    index = {c: k for k, c in enumerate(classes)}
    labels = np.fromiter(
        (index[_relative(p, directory).split(os.sep, 1)[0]] for p in paths),
        dtype=np.int64,
        count=len(paths),
    )
    _check_classes(str(directory), classes, labels, num_classes)
    return paths, labels, classes


def _check_classes(where: str, classes: Sequence[str], labels: np.ndarray, num_classes) -> None:
    """The number of class folders is ``num_classes`` (when given) and none is empty."""
    if num_classes is not None and len(classes) != num_classes:
        raise DatasetFormatError(
            f"{where}: found {len(classes)} class folders ({', '.join(classes) or 'none'}), "
            f"expected {num_classes}"
        )
    counts = np.bincount(labels, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise DatasetFormatError(
            f"{where}: class folder(s) {', '.join(empty)} hold no images "
            f"({'/'.join(_IMAGE_SUFFIXES)} files)"
        )


def _relative(path: str, root: str | os.PathLike) -> str:
    """``path`` relative to ``root``; fast for the ``os.path.join(root, ...)`` paths Keras lists."""
    prefix = os.path.join(os.fspath(root), "")
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)


def read_image_folder(
    directory: str | os.PathLike,
    image_size: tuple[int, int],
    *,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode an image-folder dataset, ``directory/<class>/[...]/<image>``, into arrays.

    The folder is listed by :func:`keras.utils.image_dataset_from_directory` with labels
    inferred and ``shuffle=False``: label ``k`` is the ``k``-th class name, the sorted
    sub-folder names unless ``class_names`` gives them (then other sub-folders are ignored),
    and images come class by class in sorted file order.  Files ending in .bmp, .gif, .jpeg,
    .jpg or .png (any case) count; others are ignored.  Images are decoded by Pillow into RGB.

    Args:
        directory: the folder holding one sub-folder per class.
        image_size: ``(height, width)`` every image must have (they are never resized).
        class_names: the classes, in label order, each of which must be a sub-folder.
        num_classes: when given, the number of class folders required.

    Returns:
        ``(x, y, class_names)``: uint8 images ``(N, height, width, 3)``, int64 labels ``(N,)``
        and the class names in label order.

    Raises:
        DatasetFormatError: the folder is missing, has another number of class folders, a
            class folder without images, or an image that cannot be decoded or has another
            size; the message names the folder or file.
    """
    size = (int(image_size[0]), int(image_size[1]))
    paths, labels, classes = _list_image_folder(Path(directory), size, class_names, num_classes)
    return _decode_images(paths, size), labels, classes


# Decoded arrays of image folders are cached as .npz files, keyed by what was read.

_CACHE_FORMAT = 1  # bump when the same files would decode to other arrays


def default_cache_dir() -> Path:
    """Where decoded image folders are cached when ``cache_dir`` is not given.

    ``$DROPNET_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/dropnet_tf``, else
    ``~/.cache/dropnet_tf``.  Never inside a data directory, which may be read-only.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path("~/.cache")).expanduser() / "dropnet_tf"


def _resolve_cache_dir(cache_dir) -> Path | None:
    if cache_dir is None:
        return default_cache_dir()
    if cache_dir is False:
        return None
    if isinstance(cache_dir, bool) or not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(
            f"cache_dir must be a directory path, None (the default, {default_cache_dir()}) or "
            f"False (no cache), got {cache_dir!r}"
        )
    return Path(cache_dir).expanduser()


def _cache_file(cache: Path, name: str, source: Path, content_key: str) -> Path:
    """``cache/<name>/<where>-<what>.npz``: one file per source path, named by its content key."""
    where = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]
    return cache / name / f"{where}-{content_key}.npz"


def _files_key(root: Path, paths: Sequence[str], extra) -> str:
    """Hash of the files' names (relative to ``root``), sizes and modification times."""
    digest = hashlib.sha256(repr((_CACHE_FORMAT, extra)).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{_relative(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _read_cache(path: Path | None, num_classes: int) -> tuple[_Raw, list[str]] | None:
    """The cached arrays, or None when absent or unusable (then they are decoded again)."""
    if path is None or not path.is_file():
        return None
    try:
        arrays = load_npz(path)
        x_train, x_test = arrays["x_train"], arrays["x_test"]
        y_train, y_test = arrays["y_train"], arrays["y_test"]
        classes = [str(c) for c in arrays["class_names"]]
        ok = (
            x_train.dtype == x_test.dtype == np.uint8
            and x_train.ndim == x_test.ndim == 4
            and len(x_train) == len(y_train)
            and len(x_test) == len(y_test)
            and len(classes) == num_classes
        )
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: decode again
        warnings.warn(f"ignoring unreadable dataset cache {path} ({error})", RuntimeWarning)
        return None
    if not ok:
        warnings.warn(f"ignoring dataset cache {path}: unexpected arrays", RuntimeWarning)
        return None
    raw = _Raw(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), num_classes)
    return raw, classes


def _write_cache(path: Path | None, raw: _Raw, classes: Sequence[str]) -> None:
    """Save the decoded arrays atomically and drop older caches of the same source."""
    if path is None:
        return
    try:
        save_npz_atomic(
            path,
            x_train=raw.x_train,
            y_train=raw.y_train,
            x_test=raw.x_test,
            y_test=raw.y_test,
            class_names=np.asarray(list(classes), dtype=str),
        )
    except OSError as error:
        warnings.warn(
            f"could not write the dataset cache {path} ({error}); the next load decodes the "
            f"images again. Point {CACHE_DIR_ENV} or cache_dir= at a writable directory, or "
            "pass cache_dir=False.",
            RuntimeWarning,
        )
        return
    where = path.name.split("-")[0]
    for stale in path.parent.glob(f"{where}-*.npz"):
        if stale != path:
            try:
                stale.unlink()
            except OSError:
                pass


# ---- CIFAR-10 as JPEG (cifar10_jpeg) ---------------------------------------------------------

_CIFAR10_JPEG_SIZE = (32, 32)

#: Archive names searched for in the data roots, per dataset.
_ARCHIVES = {"cifar10_jpeg": ("cifar10_jpeg.tar.gz", "cifar10_jpeg.tgz", "cifar10_jpeg.tar")}


def _local_cifar10_jpeg(d: Path, cache: Path | None) -> _Raw | None:
    """``d/train/<class>/*.jpg`` and ``d/test/<class>/*.jpg``, decoded once, then cached."""
    found = _cifar10_jpeg_folder(d, cache)
    return None if found is None else found[0]


def _cifar10_jpeg_folder(d: Path, cache: Path | None) -> tuple[_Raw, list[str]] | None:
    """:func:`_local_cifar10_jpeg`, with the class names."""
    train, test = d / "train", d / "test"
    if not train.is_dir() and not test.is_dir():
        return None
    if not train.is_dir() or not test.is_dir():
        have, lack = ("train", "test") if train.is_dir() else ("test", "train")
        raise _NotFound(f"has {have}/ but no {lack}/")
    num_classes = _NUM_CLASSES["cifar10_jpeg"]
    size = _CIFAR10_JPEG_SIZE
    train_paths, y_train, classes = _list_image_folder(train, size, num_classes=num_classes)
    test_paths, y_test, test_classes = _list_image_folder(test, size, num_classes=num_classes)
    if test_classes != classes:
        raise DatasetFormatError(
            f"{d}: train/ and test/ have different class folders "
            f"(train: {', '.join(classes)}; test: {', '.join(test_classes)})"
        )
    path = None
    if cache is not None:
        key = _files_key(d, train_paths + test_paths, ("folder", size, classes))
        path = _cache_file(cache, "cifar10_jpeg", d, key)
    cached = _read_cache(path, num_classes)
    if cached is not None and np.array_equal(cached[0].y_train, y_train) and np.array_equal(
        cached[0].y_test, y_test
    ):
        return cached[0], classes
    raw = _Raw(_decode_images(train_paths, size), y_train, _decode_images(test_paths, size), y_test,
               num_classes)
    _write_cache(path, raw, classes)
    return raw, classes


def _candidate_archives(name: str, data_dir) -> list[Path]:
    """Archives of ``name`` in the search roots (or ``data_dir`` itself when it is one)."""
    names = _ARCHIVES.get(name, ())
    if not names:
        return []
    roots, explicit, _ = _search_roots(data_dir)
    found = []
    if explicit and roots[0].is_file() and roots[0].name.endswith((".tar.gz", ".tgz", ".tar")):
        found.append(roots[0])
    for root in roots:
        found += [root / n for n in names if (root / n).is_file()]
    return found


def _archive_members(archive: Path) -> tuple[str, dict[str, list[tuple[str, bytes]]]]:
    """Image members ``[<top>/]{train,test}/<class>/.../<file>`` of ``archive``, read in memory.

    Returns ``top`` (``""`` when train/ and test/ are at the root) and
    ``{"train": [(path below the split folder, bytes), ...], "test": [...]}``.  The archive is
    streamed once and never unpacked: writing 60,000 small files costs far more than decoding
    them.  Only regular files count; links and other members are skipped.
    """
    splits: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    top = None
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                parts = [part for part in member.name.split("/") if part not in ("", ".")]
                if len(parts) >= 2 and parts[0] in splits:
                    where = ""
                elif len(parts) >= 3 and parts[1] in splits:
                    where = parts[0]
                else:
                    continue
                top = where if top is None else top
                rest = parts[1:] if where == "" else parts[2:]
                if where != top or len(rest) < 2 or rest[0].startswith("."):  # hidden class
                    continue
                if member.isfile() and parts[-1].lower().endswith(_IMAGE_SUFFIXES):
                    data = tar.extractfile(member).read()
                    splits[parts[0] if where == "" else parts[1]].append(("/".join(rest), data))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetFormatError(f"{archive}: cannot read the archive ({error})") from error
    if top is None:
        raise DatasetFormatError(
            f"{archive}: expected cifar10_jpeg/train/<class>/ and cifar10_jpeg/test/<class>/ "
            "inside, found neither"
        )
    for split, members in splits.items():
        if not members:
            folder = f"{top}/{split}" if top else split
            raise DatasetFormatError(f"{archive}: no images under {folder}/")
    return top, splits


def _archive_split(archive: Path, top: str, split: str, members: list[tuple[str, bytes]]):
    """``(names, contents, labels, classes)`` of one split, ordered as a folder listing is."""

    def order(item):  # class, then the folder inside it, then the file name, as Keras lists
        parts = item[0].split("/")
        return parts[0], "/".join(parts[1:-1]), parts[-1]

    members = sorted(members, key=order)
    class_of = [name.split("/", 1)[0] for name, _ in members]
    classes = sorted(set(class_of))
    index = {c: k for k, c in enumerate(classes)}
    labels = np.asarray([index[c] for c in class_of], dtype=np.int64)
    folder = f"{top}/{split}" if top else split
    _check_classes(f"{archive}: {folder}", classes, labels, _NUM_CLASSES["cifar10_jpeg"])
    names = [f"{archive}: {folder}/{name}" for name, _ in members]
    return names, [data for _, data in members], labels, classes


def _local_cifar10_jpeg_archive(archive: Path, cache: Path | None) -> _Raw:
    """The folder inside ``archive`` (e.g. ``cifar10_jpeg.tar.gz``), read without unpacking.

    Cached by the archive's path, size and modification time; on a miss the archive is
    streamed once and its images are decoded from memory.  Nothing is ever written next to
    the archive, nor unpacked anywhere.  Labels and order are those of the unpacked folder.
    """
    num_classes = _NUM_CLASSES["cifar10_jpeg"]
    size = _CIFAR10_JPEG_SIZE
    path = None
    if cache is not None:
        stat = archive.stat()
        key = hashlib.sha256(
            repr((_CACHE_FORMAT, "archive", size, stat.st_size, stat.st_mtime_ns)).encode()
        ).hexdigest()[:20]
        path = _cache_file(cache, "cifar10_jpeg", archive, key)
    cached = _read_cache(path, num_classes)
    if cached is not None:
        return cached[0]
    top, splits = _archive_members(archive)
    train_names, train_data, y_train, classes = _archive_split(
        archive, top, "train", splits["train"]
    )
    test_names, test_data, y_test, test_classes = _archive_split(
        archive, top, "test", splits["test"]
    )
    del splits
    if test_classes != classes:
        raise DatasetFormatError(
            f"{archive}: train/ and test/ have different class folders "
            f"(train: {', '.join(classes)}; test: {', '.join(test_classes)})"
        )
    x_train = _decode_images(train_names, size, train_data)
    del train_data
    raw = _Raw(x_train, y_train, _decode_images(test_names, size, test_data), y_test, num_classes)
    _write_cache(path, raw, classes)
    return raw


# ---- Tiny ImageNet ---------------------------------------------------------------------------

_TINY_SIZE = (64, 64)


def _local_tiny_imagenet(d: Path) -> _Raw | None:
    """The official ``tiny-imagenet-200`` folder.

    Class ``k`` is the ``k``-th wnid of ``wnids.txt`` in sorted order.  ``train/<wnid>/images``
    is the training set (listed by :func:`read_image_folder`'s Keras listing, split into
    train/val by :func:`load_dataset`); the official ``val`` folder, labelled by
    ``val/val_annotations.txt`` (tab-separated: file name, wnid, box), is the test set, since
    the official test images have no labels.
    """
    wnids_file = d / "wnids.txt"
    if not wnids_file.is_file():
        return None
    annotations = d / "val" / "val_annotations.txt"
    if not (d / "train").is_dir() or not annotations.is_file():
        raise _NotFound("has wnids.txt but not train/ and val/val_annotations.txt")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    index = {wnid: k for k, wnid in enumerate(wnids)}
    train_paths, train_labels, _ = _list_image_folder(d / "train", _TINY_SIZE, class_names=wnids)

    test_paths: list[Path] = []
    test_labels: list[int] = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DatasetFormatError(
                f"{annotations}:{number}: expected 'file<TAB>wnid<TAB>...' with a wnid listed "
                f"in wnids.txt, got {line!r}"
            )
        test_paths.append(d / "val" / "images" / fields[0].strip())
        test_labels.append(index[fields[1].strip()])

    return _Raw(
        _decode_images(train_paths, _TINY_SIZE),
        train_labels,
        _decode_images(test_paths, _TINY_SIZE),
        np.asarray(test_labels, dtype=np.int64),
        len(wnids),
    )
