"""The Python examples of docs/cnn.md run as written (needs the shared data)."""

from __future__ import annotations

import re

from conftest import ROOT


def test_cnn_docs_examples_run(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("XBARSOLVE_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)  # the example writes its cache under ./calibration/cnn
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "cnn.md").read_text(), flags=re.S)
    assert len(blocks) == 5
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, "docs/cnn.md", "exec"), namespace)
    assert namespace["report"].accuracy_software > 0.9
    assert list((tmp_path / "calibration" / "cnn").glob("*.h5"))
