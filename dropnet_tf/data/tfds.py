"""tensorflow-datasets as a source: prepared datasets, or a download when the host resolves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dropnet_tf.data.common import (
    _NotFound,
    _NUM_CLASSES,
    _Raw,
    _TFDS_NAMES,
)


# --------------------------------------------------------------------------------------------
# tensorflow-datasets
# --------------------------------------------------------------------------------------------


def _tfds_data_dir(data_dir) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _tfds_prepared(root: Path, tfds_name: str) -> bool:
    """Whether ``root/<name>/[<config>/]<version>/dataset_info.json`` exists (no TFDS import)."""
    base = root / tfds_name
    if not base.is_dir():
        return False
    for depth_1 in base.iterdir():
        if (depth_1 / "dataset_info.json").is_file():
            return True
        if depth_1.is_dir():
            for depth_2 in depth_1.iterdir():
                if (depth_2 / "dataset_info.json").is_file():
                    return True
    return False


_TFDS_DOWNLOAD_HOST = "storage.googleapis.com"


def _host_resolves(host: str, timeout: float = 2.0) -> bool:
    """Whether ``host`` resolves within ``timeout`` seconds (a DNS look-up, no traffic)."""
    import concurrent.futures
    import socket

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(socket.getaddrinfo, host, 443)
    try:
        future.result(timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - unresolvable, timed out: either way, offline
        return False
    finally:
        pool.shutdown(wait=False)


def _load_tfds(name: str, data_dir, download) -> tuple[_Raw, str]:
    tfds_name = _TFDS_NAMES[name]
    root = _tfds_data_dir(data_dir)
    prepared = _tfds_prepared(root, tfds_name)
    if download == "auto":
        download = not prepared and _host_resolves(_TFDS_DOWNLOAD_HOST)
        if not prepared and not download:
            raise _NotFound(f"{tfds_name!r} not prepared in {root} and {_TFDS_DOWNLOAD_HOST} "
                            "does not resolve (offline), so no download was tried")
    if not download and not prepared:
        raise _NotFound(f"{tfds_name!r} not prepared in {root} and download=False")
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise _NotFound(
            f"tensorflow-datasets is not installed ({error}); `pip install tensorflow-datasets`"
        ) from error
    try:
        train, test = tfds.load(
            tfds_name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            data_dir=str(root),
            download=download,
        )
        x_train, y_train = tfds.as_numpy(train)
        x_test, y_test = tfds.as_numpy(test)
    except Exception as error:  # noqa: BLE001 - offline, missing files, version mismatch...
        summary = " ".join(str(error).split())[:300]
        raise _NotFound(f"tfds.load({tfds_name!r}, data_dir={str(root)!r}) failed: "
                        f"{type(error).__name__}: {summary}") from error
    # TFDS images are already channel-last, (N, 28, 28, 1) for the grayscale datasets.
    x_train, x_test = np.asarray(x_train, dtype=np.uint8), np.asarray(x_test, dtype=np.uint8)
    return _Raw(x_train, y_train, x_test, y_test, _NUM_CLASSES[name]), f"tfds:{root}"
