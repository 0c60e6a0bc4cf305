"""IDX and CIFAR parsers on small files, and the download path against a local HTTP server."""

from __future__ import annotations

import functools
import gzip
import http.server
import pickle
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from trainbed.worker.datasets import (
    MNIST_FILES,
    DatasetError,
    load_dataset,
    read_cifar_batch,
    read_idx,
)


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def images(n: int, size: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_images_and_labels(tmp_path: Path, gz: bool) -> None:
    x = images(5)
    y = np.arange(5, dtype=np.uint8)
    for name, array in (("x", x), ("y", y)):
        path = tmp_path / (f"{name}.gz" if gz else name)
        data = idx_bytes(array)
        path.write_bytes(gzip.compress(data) if gz else data)
        got = read_idx(path)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, array)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_body(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(images(5))[:-7]
    path = tmp_path / ("t.gz" if gz else "t")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DatasetError, match="expected 80 values"):
        read_idx(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("data", [b"", b"\x00\x00"])
def test_read_idx_too_short(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "short"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match="too short"):
        read_idx(path)


@pytest.mark.timeout(10)
def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "cut"
    path.write_bytes(idx_bytes(images(5))[:9])  # magic + 1.25 of 3 dimensions
    with pytest.raises(DatasetError):
        read_idx(path)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "magic",
    [
        struct.pack(">HBB", 0, 0x0D, 3),  # float32 IDX, not unsigned bytes
        struct.pack(">HBB", 1, 0x08, 3),  # non-zero leading bytes
        b"\x1f\x8b\x08\x00",  # a gzip file under a name without .gz
    ],
)
def test_read_idx_wrong_magic(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(magic + idx_bytes(images(2))[4:])
    with pytest.raises(DatasetError, match="not an unsigned-byte IDX"):
        read_idx(path)


@pytest.mark.timeout(10)
def test_read_cifar_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(4, 3 * 32 * 32), dtype=np.uint8)
    labels = [3, 1, 4, 1]
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as handle:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, handle)
    x, y = read_cifar_batch(path)
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x.reshape(4, -1), data)
    assert y.dtype == np.int64 and y.tolist() == labels


@pytest.mark.timeout(10)
def test_read_cifar_batch_label_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0]}, handle)
    with pytest.raises(DatasetError, match="2 images but 1 labels"):
        read_cifar_batch(path)


# --- download ------------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        type(self).requests.append(self.path)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local MNIST mirror: gzipped tiny IDX files served over HTTP on 127.0.0.1."""
    served = tmp_path / "mirror"
    served.mkdir()
    arrays = {
        "train_x": images(20, seed=1),
        "train_y": np.arange(20, dtype=np.uint8) % 10,
        "test_x": images(10, seed=2),
        "test_y": np.arange(10, dtype=np.uint8),
    }
    for key, stem in MNIST_FILES.items():
        (served / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arrays[key])))
    _Quiet.requests = []
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_proxy")
def test_download_and_load_mnist(
    tmp_path: Path, mirror: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = mirror
    monkeypatch.setenv("TRAINBED_MNIST_MIRROR", url)
    root = tmp_path / "data"
    data = load_dataset("mnist", root=root, allow_download=True)
    assert tuple(data.train_x.shape) == (20, 1, 4, 4)
    assert tuple(data.test_x.shape) == (10, 1, 4, 4)
    assert data.train_y.tolist() == [i % 10 for i in range(20)]
    assert data.classes == 10 and data.channels == 1 and data.size == 4
    for stem in MNIST_FILES.values():
        assert (root / "mnist" / f"{stem}.gz").is_file()
    assert sorted(_Quiet.requests) == sorted(f"/{s}.gz" for s in MNIST_FILES.values())
    # No temp files left behind by the atomic download.
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(
        f"{s}.gz" for s in MNIST_FILES.values()
    )
    # A second load reads the cached files and downloads nothing.
    _Quiet.requests = []
    again = load_dataset("mnist", root=root, allow_download=True)
    assert _Quiet.requests == []
    assert bool((again.train_x == data.train_x).all())


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_proxy")
def test_download_missing_file_is_dataset_error(
    tmp_path: Path, mirror: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = mirror
    (served / f"{MNIST_FILES['test_y']}.gz").unlink()
    monkeypatch.setenv("TRAINBED_MNIST_MIRROR", url)
    with pytest.raises(DatasetError, match="could not download"):
        load_dataset("mnist", root=tmp_path / "data", allow_download=True)
    leftovers = [p.name for p in (tmp_path / "data" / "mnist").iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.timeout(10)
def test_no_files_and_no_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBED_MNIST_MIRROR", "http://127.0.0.1:9/")
    for name in ("mnist", "fashion-mnist", "cifar10"):
        with pytest.raises(DatasetError, match="downloads are off"):
            load_dataset(name, root=tmp_path, allow_download=False)


@pytest.mark.timeout(10)
def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown data set"):
        load_dataset("imagenet", root=tmp_path, allow_download=False)
