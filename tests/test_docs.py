"""The README's Python examples run as written (docs with runnable examples)."""

from __future__ import annotations

import re

from conftest import ROOT


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_examples_run(tmp_path, monkeypatch, require_ngspice):
    monkeypatch.chdir(tmp_path)  # the examples write files
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 2
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "xbar.h5").exists()
