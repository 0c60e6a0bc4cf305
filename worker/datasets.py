"""The data sets a workload can name, read from a data directory and downloaded where a network
exists.

MNIST and Fashion-MNIST are IDX files (raw or gzipped), CIFAR-10 the python pickles. They live
under ``$TRAINBED_DATA`` (a PVC in the cluster; ``~/.cache/trainbed/data`` by default) and are
fetched from a mirror when missing; the mirror is an environment variable, so tests point it at
a local HTTP server. scikit-learn's bundled digits work offline and are real data; the synthetic
set is for benchmarks. The validation split is held out of the training data with a fixed seed,
the same in every trial, so trials are compared on the same samples; the test set is separate.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainbed.contract.env import CIFAR10_URL, DATA, FASHION_MNIST_MIRROR, MNIST_MIRROR

#: The seed of the validation hold-out: fixed, so every trial validates on the same samples.
VALIDATION_SEED = 20240601

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MIRRORS = {
    "mnist": (MNIST_MIRROR, "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": (
        FASHION_MNIST_MIRROR,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    "cifar10": (CIFAR10_URL, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
}


class DatasetError(RuntimeError):
    """The data set is missing and could not be downloaded, or its files are malformed."""


@dataclass(frozen=True)
class Arrays:
    """A data set in memory: float images (N, C, H, W), normalised, and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def size(self) -> int:
        return int(self.train_x.shape[2])


def data_dir() -> Path:
    return Path(os.environ.get(DATA, Path.home() / ".cache" / "trainbed" / "data"))


# --- file formats ------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or .gz): magic, dimensions, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4:
        raise DatasetError(f"{path}: too short for an IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: header cut short ({ndim} dimensions, {len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (N, 3, 32, 32) uint8 images and labels."""
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")  # noqa: S301 - the data set's own format
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if len(images) != len(labels):
        raise DatasetError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


# --- download ------------------------------------------------------------------------------------


def download(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` atomically (temp file, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise DatasetError(f"could not download {url}: {err}") from err
    return target


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _idx_dataset(name: str, root: Path, allow_download: bool) -> dict[str, np.ndarray]:
    directory = root / name
    arrays = {}
    for key, stem in MNIST_FILES.items():
        path = _find(directory, stem)
        if path is None:
            if not allow_download:
                raise DatasetError(f"{directory / stem} is missing and downloads are off")
            env, default = MIRRORS[name]
            base = os.environ.get(env, default)
            path = download(base.rstrip("/") + f"/{stem}.gz", directory / f"{stem}.gz")
        arrays[key] = read_idx(path)
    return arrays


def _cifar10(root: Path, allow_download: bool) -> dict[str, np.ndarray]:
    directory = root / "cifar10" / "cifar-10-batches-py"
    if not (directory / "test_batch").exists():
        if not allow_download:
            raise DatasetError(f"{directory} is missing and downloads are off")
        env, default = MIRRORS["cifar10"]
        archive = download(os.environ.get(env, default), root / "cifar10" / "cifar-10.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(root / "cifar10", filter="data")
    parts = [read_cifar_batch(directory / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = read_cifar_batch(directory / "test_batch")
    return {
        "train_x": np.concatenate([p[0] for p in parts]),
        "train_y": np.concatenate([p[1] for p in parts]),
        "test_x": test_x,
        "test_y": test_y,
    }


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def _synthetic(train: int = 4096, test: int = 1024, size: int = 28) -> dict[str, np.ndarray]:
    """Learnable noise: each class has its own mean image. Deterministic."""
    rng = np.random.default_rng(7)
    means = rng.uniform(0, 255, size=(10, size, size))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=n)
        images = means[labels] + rng.normal(0, 60, size=(n, size, size))
        return np.clip(images, 0, 255).astype(np.uint8), labels

    train_x, train_y = make(train)
    test_x, test_y = make(test)
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def _to_tensors(raw: dict[str, np.ndarray]) -> Arrays:
    def images(a: np.ndarray) -> torch.Tensor:
        if a.ndim == 3:
            a = a[:, None, :, :]
        return torch.from_numpy(a.astype(np.float32) / 255.0)

    train_x, test_x = images(raw["train_x"]), images(raw["test_x"])
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train_y = torch.from_numpy(np.asarray(raw["train_y"], dtype=np.int64))
    test_y = torch.from_numpy(np.asarray(raw["test_y"], dtype=np.int64))
    return Arrays(
        train_x=(train_x - mean) / std,
        train_y=train_y,
        test_x=(test_x - mean) / std,
        test_y=test_y,
        classes=int(max(train_y.max(), test_y.max()) + 1),
    )


def load_dataset(name: str, root: Path | None = None, allow_download: bool = True) -> Arrays:
    root = root or data_dir()
    if name in ("mnist", "fashion-mnist"):
        raw = _idx_dataset(name, root, allow_download)
    elif name == "cifar10":
        raw = _cifar10(root, allow_download)
    elif name == "digits":
        raw = _digits()
    elif name == "synthetic":
        raw = _synthetic()
    else:
        raise DatasetError(f"unknown data set {name!r}")
    return _to_tensors(raw)


def validation_split(
    n: int, fraction: float, seed: int = VALIDATION_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of a fixed hold-out of ``fraction`` of ``n`` samples."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, int(round(n * fraction)))
    return np.sort(order[held:]), np.sort(order[:held])
