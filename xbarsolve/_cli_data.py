"""``xbarsolve data download`` and ``xbarsolve data check`` (:mod:`xbarsolve.data`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _groups(text: str) -> tuple[str, ...]:
    from .data import GROUPS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in GROUPS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"groups must be a comma-separated subset of {','.join(GROUPS)}; got {text!r}")
    return names


def add_download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", type=Path, default=None, help="data folder (default $XBARSOLVE_DATA, else ./xbarsolve-data)")
    p.add_argument("--only", type=_groups, default=None, help="comma-separated groups: mnist,cifar10,keras_resnet,torch_resnet")
    p.add_argument("--base-url", default=None, help="fetch BASE/GROUP/FILE from a mirror instead of the origins "
                   "(default $XBARSOLVE_DATA_URL)")
    p.add_argument("--keep-archives", action="store_true", help="keep cifar-10-binary.tar.gz (162 MB) after extracting")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None, help="data folder (default $XBARSOLVE_DATA, else ./xbarsolve-data)")


def download_main(args: argparse.Namespace) -> int:
    from .data import DataError, default_dir, download

    to = args.to or default_dir()
    try:
        done = download(to, base_url=args.base_url, only=args.only, keep_archives=args.keep_archives,
                        progress=not args.no_progress)
    except DataError as exc:
        raise SystemExit(f"xbarsolve data download: {exc}") from None
    for s in done:
        print(f"{s.state:>7}  {s.path}  ({s.detail})")
    print(f"\n{len(done)} file(s) in {to.resolve()}; point the loaders at them with:\n"
          f"    export XBARSOLVE_DATA={to.resolve()}")
    return 0


def check_main(args: argparse.Namespace) -> int:
    from .data import check, default_dir

    root = args.dir or default_dir()
    if not root.is_dir():
        raise SystemExit(f"xbarsolve data check: {root} is not a folder; run `xbarsolve data download --to {root}` "
                         "or pass --dir / set XBARSOLVE_DATA")
    statuses = check(root)
    for s in statuses:
        print(f"{s.state:>7}  {s.path}" + (f"  ({s.detail})" if s.detail else ""))
    counts = {k: sum(s.state == k for s in statuses) for k in ("ok", "partial", "missing", "bad")}
    print(f"\n{root.resolve()}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0 if counts["missing"] == counts["bad"] == 0 else 1
