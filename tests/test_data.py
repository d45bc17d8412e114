"""`xbarsolve data`: download (from a local HTTP server on 127.0.0.1), resume, refusal, layout, check."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from xbarsolve import data
from xbarsolve.cli import main


class _Server:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1, honouring ``Range`` unless told not to;
    records the requests it saw."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True):
        self.files, self.ranges, self.requests = files, ranges, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and outer.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _asset(name: str, body: bytes, source: str = "torch_resnet") -> data.Asset:
    return data.Asset(f"models/x/{name}", source, "file", len(body), _sha(body))


# ----------------------------------------------------------------- the real table, served locally
_LAYOUT = {"mnist": "mnist", "keras_resnet": "models/keras_resnet_cifar10", "torch_resnet": "models/torch_resnet_cifar10"}


def test_download_of_the_reference_files_lands_in_the_loaders_layout(data_dir, tmp_path):
    from xbarsolve.cnn.datasets import load_mnist
    from xbarsolve.cnn.models import load_keras_h5

    table = [a for a in data.assets() if a.source in _LAYOUT and a.verify != "mean"]
    served = {f"/{a.source}/{a.name}": (data_dir / _LAYOUT[a.source] / a.name).read_bytes() for a in table}
    to = tmp_path / "data"
    with _Server(served) as srv:
        done = data.download(to, base_url=srv.url, only=tuple(_LAYOUT), files=tuple(table), progress=False)
    assert [s.path for s in done] == [a.path for a in table] and {s.state for s in done} == {"ok"}
    assert {s.state for s in data.check(to, files=tuple(table))} == {"ok"}
    x, y = load_mnist(to, "test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert load_keras_h5(to / "models/keras_resnet_cifar10/resnet20v1_cifar10.h5") is not None
    assert not list(to.rglob("*.part"))


def test_reference_table_covers_what_the_loaders_read():
    paths = {a.path for a in data.assets()}
    assert {"mnist/t10k-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz",
            "cifar10/cifar-10-batches-bin/test_batch.bin",
            "models/keras_resnet_cifar10/cifar10_x_train_mean.npy"} <= paths
    assert sum(p.startswith("models/keras_resnet_cifar10/resnet") for p in paths) == 4
    assert sum(p.startswith("models/torch_resnet_cifar10/resnet") for p in paths) == 4
    assert all(len(a.sha256) == 64 for a in data.assets(include_archives=True))
    assert set(data.sources()) == set(data.GROUPS)
    assert all(u.startswith("https://") for u in data.sources().values())


def test_check_of_the_reference_folder(data_dir):
    states = {s.path: s.state for s in data.check(data_dir)}
    # the reference folder holds only the first 1,000 CIFAR-10 test images
    assert states.pop("cifar10/cifar-10-batches-bin/test_batch.bin") == "partial"
    assert set(states.values()) == {"ok"}


# ----------------------------------------------------------------- synthetic files
def test_resume_from_a_part_file_asks_only_for_the_rest(tmp_path):
    body = np.random.default_rng(0).bytes(300_000)
    a = _asset("w.th", body)
    dest = tmp_path / a.path
    dest.parent.mkdir(parents=True)
    (dest.parent / "w.th.part").write_bytes(body[:123_456])
    with _Server({"/torch_resnet/w.th": body}) as srv:
        data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert srv.requests == [("/torch_resnet/w.th", "bytes=123456-")]
    assert dest.read_bytes() == body and not (dest.parent / "w.th.part").exists()


def test_resume_restarts_when_the_server_ignores_the_range(tmp_path):
    body = np.random.default_rng(1).bytes(50_000)
    a = _asset("w.th", body)
    (tmp_path / "models/x").mkdir(parents=True)
    (tmp_path / "models/x/w.th.part").write_bytes(body[:20_000])
    with _Server({"/torch_resnet/w.th": body}, ranges=False) as srv:
        data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert (tmp_path / a.path).read_bytes() == body


def test_a_complete_part_is_verified_and_renamed(tmp_path):
    body = b"x" * 1000
    a = _asset("w.th", body)
    (tmp_path / "models/x").mkdir(parents=True)
    (tmp_path / "models/x/w.th.part").write_bytes(body)
    with _Server({"/torch_resnet/w.th": body}) as srv:  # answers 416: nothing left to send
        data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert (tmp_path / a.path).read_bytes() == body


def test_a_file_whose_checksum_differs_is_refused_and_its_part_deleted(tmp_path):
    body = b"the real weights" * 100
    a = _asset("w.th", body)
    with _Server({"/torch_resnet/w.th": body[:-1] + b"?"}) as srv:
        with pytest.raises(data.DataError, match="refused, the checksum differs"):
            data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert not (tmp_path / a.path).exists() and not (tmp_path / "models/x/w.th.part").exists()


def test_files_already_valid_are_not_fetched_again(tmp_path):
    body = b"weights" * 10
    a = _asset("w.th", body)
    (tmp_path / "models/x").mkdir(parents=True)
    (tmp_path / a.path).write_bytes(body)
    with _Server({}) as srv:
        done = data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert srv.requests == [] and done[0].detail == "already present"


def test_gzip_files_are_verified_by_their_content(tmp_path):
    content = np.random.default_rng(2).bytes(5000)
    a = data.Asset("mnist/t.gz", "mnist", "gunzip", len(content), _sha(content))
    packed = gzip.compress(content, mtime=12345)  # other gzip bytes, same content
    with _Server({"/mnist/t.gz": packed}) as srv:
        data.download(tmp_path, base_url=srv.url, files=(a,), progress=False)
    assert gzip.decompress((tmp_path / "mnist/t.gz").read_bytes()) == content
    (tmp_path / "mnist/t.gz").write_bytes(gzip.compress(content[:-1]))
    assert data.check(tmp_path, files=(a,))[0].state == "bad"


def _cifar_archive(rng):
    """A CIFAR-10-like binary archive: a 20-record test batch and two 30-record training batches."""
    test = rng.integers(0, 256, (20, 3073), dtype=np.uint8).tobytes()
    train = [rng.integers(0, 256, (30, 3073), dtype=np.uint8) for _ in range(2)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in [("test_batch.bin", test)] + [(f"data_batch_{k + 1}.bin", t.tobytes()) for k, t in enumerate(train)]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    images = np.concatenate(train)[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return buf.getvalue(), test, images.mean(axis=0)


def test_cifar_test_batch_and_training_mean_come_out_of_the_archive(tmp_path):
    from xbarsolve.cnn.datasets import load_cifar10

    archive, test, mean = _cifar_archive(np.random.default_rng(3))
    members = ("cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-bin/data_batch_2.bin")
    files = (
        data.Asset("cifar10/cifar-10-binary.tar.gz", "cifar10", "file", len(archive), _sha(archive), archive=True),
        data.Asset("cifar10/cifar-10-batches-bin/test_batch.bin", "cifar10", "prefix", len(test), _sha(test[:3073 * 5]),
                   prefix_size=3073 * 5, from_archive="cifar10/cifar-10-binary.tar.gz",
                   members=("cifar-10-batches-bin/test_batch.bin",)),
        # a reference copy whose bytes we do not have: accepted by its channel means
        data.Asset("models/keras_resnet_cifar10/cifar10_x_train_mean.npy", "cifar10", "mean", 12416, "0" * 64,
                   channel_mean=tuple(mean.mean(axis=(0, 1))), from_archive="cifar10/cifar-10-binary.tar.gz",
                   members=members),
    )
    with _Server({"/cifar10/cifar-10-binary.tar.gz": archive}) as srv:
        data.download(tmp_path, base_url=srv.url, files=files, progress=False)
    assert len(srv.requests) == 1  # one archive serves both files
    x, y = load_cifar10(tmp_path)
    assert x.shape == (20, 32, 32, 3) and y[0] == test[0]
    got = np.load(tmp_path / "models/keras_resnet_cifar10/cifar10_x_train_mean.npy")
    assert got.dtype == np.float32 and np.allclose(got, mean, rtol=0, atol=1e-4)
    assert not (tmp_path / "cifar10/cifar-10-binary.tar.gz").exists()  # archive removed after extraction
    states = [s.state for s in data.check(tmp_path, files=files[1:])]
    assert states == ["ok", "ok"]
    (tmp_path / files[1].path).write_bytes(test[: 3073 * 5])
    assert data.check(tmp_path, files=files[1:2])[0].state == "partial"


def test_unknown_group_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown group"):
        data.download(tmp_path, only=("imagenet",))


# ----------------------------------------------------------------- command line
def test_cli_check_lists_missing_files_and_fails(tmp_path, capsys):
    assert main(["data", "check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert sum(line.startswith("missing  ") for line in out.splitlines()) == len(data.assets())
    assert f"0 ok, 0 partial, {len(data.assets())} missing, 0 bad" in out


def test_cli_download_error_is_one_line(tmp_path):
    with _Server({}) as srv:
        proc = subprocess.run([sys.executable, "-m", "xbarsolve.cli", "data", "download", "--to", str(tmp_path),
                               "--only", "torch_resnet", "--base-url", srv.url, "--no-progress"],
                              capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "HTTP 404" in proc.stderr


def test_cli_download_tells_the_user_to_set_xbarsolve_data(tmp_path, capsys, monkeypatch, data_dir):
    table = tuple(a for a in data.assets() if a.source == "torch_resnet")
    served = {f"/torch_resnet/{a.name}": (data_dir / _LAYOUT["torch_resnet"] / a.name).read_bytes() for a in table}
    with _Server(served) as srv:
        monkeypatch.setenv("XBARSOLVE_DATA_URL", srv.url)
        assert main(["data", "download", "--to", str(tmp_path), "--only", "torch_resnet", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"export XBARSOLVE_DATA={tmp_path.resolve()}" in out and out.count("downloaded") == 4
