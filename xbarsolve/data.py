"""Reference data for the CNN study: fetch it from its public origins, check what is there.

:func:`download` fetches MNIST, the CIFAR-10 test batch, CrossSim's Keras CIFAR-10 ResNets
and the PyTorch CIFAR-10 ResNets into the layout the loaders expect
(:mod:`xbarsolve.cnn.datasets`, :mod:`xbarsolve.cnn.models`)::

    mnist/{t10k,train}-{images-idx3,labels-idx1}-ubyte.gz
    cifar10/cifar-10-batches-bin/test_batch.bin
    models/keras_resnet_cifar10/resnet{14,20,32,56}v1_cifar10.h5, cifar10_x_train_mean.npy
    models/torch_resnet_cifar10/resnet{20,32,44,56}-<hash>.th

Every file is checked against the SHA-256 stored in the package
(``_data_checksums.json``); a download resumes from its ``.part`` file (HTTP Range), is
refused (and its part deleted) when the checksum differs, and is renamed into place only
when it verified.  :func:`check` says what is present, missing or bad.  Only the standard
library's ``urllib`` is used; the origins can be replaced (``base_url`` or
``$XBARSOLVE_DATA_URL``), e.g. by a local mirror.  See ``docs/data.md``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from .errors import XbarsolveError

__all__ = ["Asset", "FileStatus", "DataError", "GROUPS", "assets", "sources", "check", "download", "default_dir"]

Verify = Literal["file", "gunzip", "prefix", "mean"]
State = Literal["ok", "partial", "missing", "bad"]
#: Groups of files (``only=``): the four origins.  The Keras models' input mean is derived
#: from the CIFAR-10 training batches, so it belongs to ``"cifar10"``.
GROUPS = ("mnist", "cifar10", "keras_resnet", "torch_resnet")
_CHUNK = 1 << 16


class DataError(XbarsolveError, RuntimeError):
    """A download failed, or a file's checksum differs from the stored one."""


@dataclass(frozen=True)
class Asset:
    """One file of the reference data.

    Attributes
    ----------
    path : str
        Where it lives under the data folder (``"mnist/t10k-labels-idx1-ubyte.gz"``).
    source : str
        Its origin (a key of :func:`sources`, one of :data:`GROUPS`).
    verify : {"file", "gunzip", "prefix", "mean"}
        What ``sha256`` is of: the file; its gzip-decompressed content; its first
        ``prefix_size`` bytes (CIFAR-10's test batch, of which only the first 1,000 images
        were available to compute it); or, for the derived training-set mean, the
        reference copy's bytes, with ``channel_mean`` accepted when the bytes differ.
    size : int
        Size in bytes of the file (of the decompressed content for ``"gunzip"``).
    sha256 : str
    prefix_size : int
        Bytes covered by ``sha256`` when ``verify == "prefix"``.
    channel_mean : tuple of float
        Per-channel mean (0..255 scale) of the mean image, for ``verify == "mean"``.
    archive : bool
        A transient download (an archive that other files are extracted from).
    from_archive : str
        The archive's ``path`` for files extracted or derived from one.
    members : tuple of str
        Archive members the file is extracted (one) or derived (several) from.
    """

    path: str
    source: str
    verify: Verify
    size: int
    sha256: str
    prefix_size: int = 0
    channel_mean: tuple = ()
    archive: bool = False
    from_archive: str = ""
    members: tuple = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FileStatus:
    """What :func:`check` (or :func:`download`) found for one file: ``state`` and why."""

    path: str
    state: State
    detail: str = ""


def _table() -> dict:
    return json.loads(resources.files(__package__).joinpath("_data_checksums.json").read_text())


def sources() -> dict[str, str]:
    """The public origin (base URL) of each group."""
    return dict(_table()["sources"])


def assets(*, include_archives: bool = False) -> tuple[Asset, ...]:
    """The reference data files, with their stored checksums."""
    out = []
    for row in _table()["files"]:
        a = Asset(row["path"], row["source"], row["verify"], int(row["size"]), row["sha256"],
                  int(row.get("prefix_size", 0)), tuple(row.get("channel_mean", ())), bool(row.get("archive", False)),
                  row.get("from_archive", ""), tuple(row.get("members", [row["member"]] if "member" in row else [])))
        if include_archives or not a.archive:
            out.append(a)
    return tuple(out)


def default_dir() -> Path:
    """``$XBARSOLVE_DATA`` if set, else ``./xbarsolve-data``."""
    return Path(os.environ.get("XBARSOLVE_DATA") or "xbarsolve-data")


# --------------------------------------------------------------------------- checking
def _sha256_stream(f, limit: int | None = None) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while limit is None or n < limit:
        chunk = f.read(_CHUNK if limit is None else min(_CHUNK, limit - n))
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def _verify(asset: Asset, path: Path) -> tuple[State, str]:
    """State of the file at ``path`` against ``asset`` (the file must exist)."""
    try:
        if asset.verify == "gunzip":
            with gzip.open(path, "rb") as f:
                digest, n = _sha256_stream(f)
        elif asset.verify == "prefix":
            size = path.stat().st_size
            with open(path, "rb") as f:
                digest, n = _sha256_stream(f, asset.prefix_size)
            if digest != asset.sha256:
                return "bad", f"sha256 of the first {asset.prefix_size} bytes is {digest}, expected {asset.sha256}"
            if size == asset.size:
                return "ok", f"first {asset.prefix_size} of {asset.size} bytes verified here; all by the archive's sha256"
            if size == asset.prefix_size:
                return "partial", f"only the first {asset.prefix_size} of {asset.size} bytes (verified)"
            return "bad", f"size {size} bytes, expected {asset.size}"
        else:
            with open(path, "rb") as f:
                digest, n = _sha256_stream(f)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        return "bad", f"unreadable: {exc}"
    if digest == asset.sha256 and n == asset.size:
        return "ok", ""
    if asset.verify == "mean":
        return _verify_mean(asset, path)
    what = "decompressed content" if asset.verify == "gunzip" else "file"
    if n != asset.size:
        return "bad", f"{what} has {n} bytes, expected {asset.size}"
    return "bad", f"sha256 of the {what} is {digest}, expected {asset.sha256}"


def _verify_mean(asset: Asset, path: Path) -> tuple[State, str]:
    import numpy as np

    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return "bad", f"not a NumPy file: {exc}"
    if a.shape != (32, 32, 3):
        return "bad", f"shape {a.shape}, expected (32, 32, 3)"
    got = a.astype(np.float64).mean(axis=(0, 1))
    if np.allclose(got, asset.channel_mean, rtol=0, atol=1e-3):
        return "ok", "derived from the training batches; bytes differ from the reference copy, channel means agree to 1e-3"
    return "bad", f"channel means {np.round(got, 4).tolist()}, expected {list(asset.channel_mean)}"


def check(root: str | os.PathLike, *, files: tuple[Asset, ...] | None = None) -> list[FileStatus]:
    """The state of every reference data file under ``root``: ok, partial, missing or bad."""
    root = Path(root)
    out = []
    for a in files if files is not None else assets():
        p = root / a.path
        if not p.is_file():
            out.append(FileStatus(a.path, "missing"))
        else:
            state, detail = _verify(a, p)
            out.append(FileStatus(a.path, state, detail))
    return out


# --------------------------------------------------------------------------- download
def _url(asset: Asset, base_url: str | None, origins: dict[str, str]) -> str:
    if base_url:
        return f"{base_url.rstrip('/')}/{asset.source}/{asset.name}"
    return origins[asset.source] + asset.name


def _fetch(url: str, dest: Path, asset: Asset, progress: bool, timeout: float) -> None:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumed if present), verify, rename."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "xbarsolve-data/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part is already complete
            resp = None
        else:
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if resp is not None:
        with resp:
            if offset and resp.status != 206:  # the server ignored the range: start over
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=asset.name, disable=not progress, leave=False,
            ) as bar:
                try:
                    while chunk := resp.read(_CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
                except (OSError, urllib.error.URLError) as exc:
                    raise DataError(f"{url}: interrupted after {f.tell()} bytes ({exc}); run the command again to resume") from None
    state, detail = _verify(asset, part)
    if state != "ok":
        part.unlink()
        raise DataError(f"{url}: refused, the checksum differs ({detail}); the partial download was deleted")
    os.replace(part, dest)


def _extract(asset: Asset, archive: Path, dest: Path) -> None:
    """Write ``asset`` to ``dest`` from the verified ``archive``: one member copied, or the
    training-set mean derived from several; through a ``.part`` file, verified, renamed."""
    import numpy as np

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with tarfile.open(archive, "r:gz") as tar:
        if asset.verify == "mean":
            total, count = np.zeros((32, 32, 3)), 0
            for member in asset.members:
                raw = np.frombuffer(tar.extractfile(member).read(), dtype=np.uint8).reshape(-1, 3073)
                images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                total += images.sum(axis=0, dtype=np.float64)
                count += images.shape[0]
            buf = io.BytesIO()
            np.save(buf, (total / count).astype(np.float32))
            part.write_bytes(buf.getvalue())
        else:
            src = tar.extractfile(asset.members[0])
            if src is None:
                raise DataError(f"{archive}: {asset.members[0]} is not a regular file")
            with open(part, "wb") as f:
                while chunk := src.read(_CHUNK):
                    f.write(chunk)
    state, detail = _verify(asset, part)
    if state != "ok":
        part.unlink()
        raise DataError(f"{asset.path} from {archive.name}: refused ({detail})")
    os.replace(part, dest)


def download(
    to: str | os.PathLike,
    *,
    base_url: str | None = None,
    only: tuple[str, ...] | None = None,
    files: tuple[Asset, ...] | None = None,
    keep_archives: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> list[FileStatus]:
    """Fetch the reference data into ``to`` and verify it; files already there and valid are kept.

    Parameters
    ----------
    to : path
        The data folder (created); point ``XBARSOLVE_DATA`` at it afterwards.
    base_url : str, optional
        Fetch ``{base_url}/{group}/{file name}`` instead of the public origins (a mirror,
        or a test server); default ``$XBARSOLVE_DATA_URL`` if set.
    only : tuple of str, optional
        Groups to fetch (:data:`GROUPS`); default all.
    files : tuple of Asset, optional
        The files and checksums (default: the package's table, archives included).
    keep_archives : bool
        Keep the CIFAR-10 archive (162 MB) after extracting from it.
    progress : bool
        Show a progress bar per file.
    timeout : float
        Socket timeout (s) of each request.

    Returns
    -------
    list of FileStatus
        The state of every requested file afterwards (all ``"ok"``).

    Raises
    ------
    DataError
        When a file cannot be fetched or its checksum differs (the ``.part`` is deleted).
    ValueError
        On an unknown group.
    """
    if only is not None:
        bad = sorted(set(only) - set(GROUPS))
        if bad:
            raise ValueError(f"only: unknown group(s) {bad}; choose from {list(GROUPS)}")
    to = Path(to)
    table = files if files is not None else assets(include_archives=True)
    chosen = [a for a in table if only is None or a.source in only]
    base_url = base_url or os.environ.get("XBARSOLVE_DATA_URL") or None
    origins = sources() if base_url is None else {}
    archives = {a.path: a for a in table if a.archive}
    done: list[FileStatus] = []
    fetched: set[str] = set()
    for a in chosen:
        if a.archive:
            continue
        dest = to / a.path
        if dest.is_file() and _verify(a, dest)[0] == "ok":
            done.append(FileStatus(a.path, "ok", "already present"))
            continue
        if a.from_archive:
            arc = archives[a.from_archive]
            arc_path = to / arc.path
            if not (arc_path.is_file() and _verify(arc, arc_path)[0] == "ok"):
                _fetch(_url(arc, base_url, origins), arc_path, arc, progress, timeout)
            fetched.add(arc.path)
            _extract(a, arc_path, dest)
        else:
            _fetch(_url(a, base_url, origins), dest, a, progress, timeout)
        done.append(FileStatus(a.path, "ok", "downloaded"))
    if not keep_archives:
        for p in fetched:
            (to / p).unlink(missing_ok=True)
    return done
