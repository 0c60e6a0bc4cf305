"""CIFAR-10 fetched from a local HTTP server: the archive is downloaded, unpacked and parsed."""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from trainbed.worker.datasets import load_dataset

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_archive(path: Path, per_batch: int = 3) -> None:
    """A cifar-10-python.tar.gz in the real layout, with ``per_batch`` images per batch."""
    rng = np.random.default_rng(5)
    with tarfile.open(path, "w:gz") as tar:
        for number, name in enumerate(BATCHES):
            batch = {
                b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
                b"labels": [(number + i) % 10 for i in range(per_batch)],
                b"batch_label": name.encode(),
            }
            data = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "served"
    root.mkdir()
    cifar_archive(root / "cifar-10-python.tar.gz")
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.timeout(30)
def test_download_and_load_cifar10(
    tmp_path: Path, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("TRAINBED_CIFAR10_URL", served)
    data = load_dataset("cifar10", root=tmp_path / "data", allow_download=True)
    assert tuple(data.train_x.shape) == (15, 3, 32, 32)
    assert tuple(data.test_x.shape) == (3, 3, 32, 32)
    assert data.channels == 3 and data.size == 32
    assert data.train_y.tolist()[:3] == [0, 1, 2] and data.test_y.tolist() == [5, 6, 7]
    unpacked = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(BATCHES)
    # The unpacked batches are reused: no server needed the second time.
    monkeypatch.setenv("TRAINBED_CIFAR10_URL", "http://127.0.0.1:9/absent.tar.gz")
    again = load_dataset("cifar10", root=tmp_path / "data", allow_download=True)
    assert bool((again.train_x == data.train_x).all())
