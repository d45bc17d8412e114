"""Safe HDF5 writing: atomic replacement of whole files and checksummed datasets.

* :func:`atomic_file` yields a temporary path of a unique name in the target's folder;
  when the block succeeds the file is flushed to disk (``fsync``) and renamed over the
  target (``os.replace``, atomic on POSIX), otherwise it is deleted.  A reader therefore
  sees the old file or the new one, never half a file, and two writers never share a
  temporary file.  :func:`atomic_hdf5` does the same with an open ``h5py.File``.
* :func:`create_dataset` stores every non-scalar dataset chunked with HDF5's Fletcher-32
  checksum filter, which HDF5 verifies on every read.  Scalar datasets cannot carry
  filters, so they get a ``checksum_crc32`` attribute (CRC-32 of the value's bytes)
  instead.  :func:`read_dataset` reads either kind and turns a failed check into a
  :class:`~xbarsolve.errors.FormatError` naming the file and the dataset.
* :func:`attribute_text` reads a text attribute whatever h5py returns for it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import FormatError

__all__ = ["atomic_file", "atomic_hdf5", "create_dataset", "read_dataset", "attribute_text", "CRC_ATTR"]

#: Attribute holding the CRC-32 of a scalar dataset's bytes.
CRC_ATTR = "checksum_crc32"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; rename it over ``path`` on success.

    The parent folder is created if missing.  The temporary file exists (empty) when the
    block starts; the block writes it (any writer may truncate it).  On success it gets
    the usual mode (``0o666`` less the umask), is fsynced and atomically replaces
    ``path``; on any exception it is deleted and the exception propagates.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def atomic_hdf5(path: str | os.PathLike, *, copy_of: str | os.PathLike | None = None):
    """Yield an ``h5py.File`` open for writing that atomically replaces ``path`` when closed.

    Parameters
    ----------
    path : path
        Target file.
    copy_of : path, optional
        Start from a byte copy of this existing file (opened in append mode) instead of
        an empty one.
    """
    import h5py

    with atomic_file(path) as tmp:
        if copy_of is not None:
            with open(copy_of, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
        with h5py.File(tmp, "a" if copy_of is not None else "w") as f:
            yield f


def create_dataset(group, name: str, data, **kwargs):
    """Create a checksummed dataset (Fletcher-32 filter, or a CRC-32 attribute for a scalar).

    ``kwargs`` go to ``h5py.Group.create_dataset`` (e.g. ``compression``) for non-scalars.
    """
    arr = np.asarray(data)
    if arr.ndim == 0:
        ds = group.create_dataset(name, data=arr)
        ds.attrs[CRC_ATTR] = np.uint32(zlib.crc32(arr.tobytes()))
        return ds
    return group.create_dataset(name, data=arr, fletcher32=True, **kwargs)


def read_dataset(ds, path) -> np.ndarray:
    """Read a whole dataset, verifying its checksum.

    Raises
    ------
    FormatError
        Naming ``path`` and the dataset when the data fail their checksum or cannot be
        read.
    """
    try:
        value = ds[()]
    except (OSError, RuntimeError) as exc:
        filters = " (its Fletcher-32 checksum does not match: the bytes were changed)" if ds.fletcher32 else ""
        raise FormatError(f"{path}: dataset {ds.name} cannot be read{filters}; the file is corrupted, "
                          f"restore or regenerate it ({exc})") from None
    if CRC_ATTR in ds.attrs:
        try:
            stored = int(np.asarray(ds.attrs[CRC_ATTR]))
        except (TypeError, ValueError):
            raise FormatError(f"{path}: dataset {ds.name} has an unreadable {CRC_ATTR} attribute") from None
        if np.ndim(value) != 0 or zlib.crc32(np.asarray(value).tobytes()) != stored:
            raise FormatError(f"{path}: dataset {ds.name} fails its CRC-32 checksum (the bytes were changed); "
                              f"the file is corrupted, restore or regenerate it")
    return value


def attribute_text(value) -> str:
    """An attribute's value as text: ``str`` or ``bytes`` (decoded), else the ``repr`` of
    its Python value (so that a number where text belongs shows as one in messages)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value) if isinstance(value, str) else repr(value)
