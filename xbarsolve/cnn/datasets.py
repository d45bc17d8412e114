"""Readers for the standard MNIST IDX and CIFAR-10 binary files, and the data folder.

Paths are always arguments; :func:`data_dir` resolves the reference data folder from
``$XBARSOLVE_DATA`` (or a ``shared/data`` folder beside a development checkout), and
raises a clear :class:`FileNotFoundError` when neither exists.  Reading never downloads:
``xbarsolve data download`` fetches the files (see ``docs/data.md``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["data_dir", "read_idx", "load_mnist", "load_cifar10", "cifar10_keras_input", "cifar10_torch_input", "mnist_input"]

_ROOT = Path(__file__).resolve().parents[2]


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The reference data folder: ``path`` if given, else ``$XBARSOLVE_DATA``, else the
    ``shared/data`` folder beside a development checkout.

    Raises
    ------
    FileNotFoundError
        When the folder does not exist.
    """
    cands = [Path(path)] if path is not None else []
    if not cands and os.environ.get("XBARSOLVE_DATA"):
        cands.append(Path(os.environ["XBARSOLVE_DATA"]))
    if not cands:
        cands.append(_ROOT.parent / "shared" / "data")
    for c in cands:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"data folder not found ({', '.join(map(str, cands))}); pass a path or set XBARSOLVE_DATA "
        "to the folder holding mnist/, cifar10/ and models/ (`xbarsolve data download --to DIR` fetches them)")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array of its stored dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    data = np.frombuffer(raw, dtype=dtypes[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} items for shape {shape}, found {data.size}")
    return data.reshape(shape).astype(np.dtype(dtypes[code]).newbyteorder("="))


def load_mnist(root: str | os.PathLike | None = None, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (N, 28, 28) uint8 and labels (N,) uint8 from ``<root>/mnist``.

    Parameters
    ----------
    root : path or None
        The data folder (see :func:`data_dir`) or the ``mnist`` folder itself.
    split : {"test", "train"}
    """
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train'; got {split!r}")
    d = data_dir(root)
    if (d / "mnist").is_dir():
        d = d / "mnist"
    prefix = "t10k" if split == "test" else "train"
    x = read_idx(d / f"{prefix}-images-idx3-ubyte.gz")
    y = read_idx(d / f"{prefix}-labels-idx1-ubyte.gz")
    if len(x) != len(y):
        raise ValueError(f"MNIST {split}: {len(x)} images but {len(y)} labels")
    return x, y


def mnist_input(images: np.ndarray) -> np.ndarray:
    """MNIST uint8 images to the shipped CNN's input: (N, 28, 28, 1) float64 in [0, 1]."""
    return (np.asarray(images, dtype=np.float64) / 255.0)[..., None]


def load_cifar10(root: str | os.PathLike | None = None, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 images (N, 32, 32, 3) uint8 NHWC and labels (N,) from the binary version.

    Parameters
    ----------
    root : path or None
        The data folder, the ``cifar10`` folder, the ``cifar-10-batches-bin`` folder or a
        ``.bin`` file.
    n : int or None
        Read at most the first ``n`` images.
    """
    p = Path(root) if root is not None and Path(root).is_file() else data_dir(root)
    if p.is_dir():
        for sub in ("cifar10/cifar-10-batches-bin", "cifar-10-batches-bin", "."):
            if (p / sub / "test_batch.bin").is_file():
                p = p / sub / "test_batch.bin"
                break
        else:
            raise FileNotFoundError(f"no cifar-10-batches-bin/test_batch.bin under {p}")
    raw = np.fromfile(p, dtype=np.uint8)
    rec = 1 + 3 * 32 * 32
    if raw.size % rec:
        raise ValueError(f"{p}: size {raw.size} is not a multiple of the CIFAR-10 record size {rec}")
    raw = raw.reshape(-1, rec)
    if n is not None:
        raw = raw[:n]
    labels = raw[:, 0].copy()
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def cifar10_keras_input(images: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The Keras ResNets' input: ``(x_uint8 - mean) / 255`` with the training-set
    per-pixel ``mean`` (32, 32, 3) on the 0..255 scale."""
    return (np.asarray(images, dtype=np.float64) - np.asarray(mean, dtype=np.float64)) / 255.0


def cifar10_torch_input(images: np.ndarray, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> np.ndarray:
    """The PyTorch CIFAR ResNets' input (NHWC): ``(x / 255 - mean) / std`` per channel."""
    return (np.asarray(images, dtype=np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
