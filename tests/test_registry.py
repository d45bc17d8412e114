"""The model registry: user models round trip through files; files name nothing to import."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve import registry
from xbarsolve.errors import FormatError


@dataclasses.dataclass(frozen=True)
class Tagged(xs.devices.Sinh):
    """A user's device: the sinh law plus fields of its own."""

    batch: str = ""
    offsets: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2))


@pytest.fixture
def tagged():
    """``Tagged`` registered for one test, removed afterwards."""
    before = registry.registered_models()
    xs.register_model(Tagged, name="test.Tagged")
    yield Tagged
    registry._MODELS.clear()
    registry._MODELS.update(before)


def test_builtins_are_registered_by_class_name():
    models = registry.registered_models()
    for cls in (xs.devices.Linear, xs.devices.Sinh, xs.devices.Poly, xs.transistors.Switch,
                xs.transistors.Resistor, xs.transistors.Level1):
        assert models[cls.__name__] is cls


def test_a_registered_user_model_round_trips(tmp_path, tagged):
    dev = Tagged(a=3.0, batch="wafer 7", offsets=np.array([0.5, -1.0]))
    xbar = xs.Crossbar(np.full((3, 2), 2e-5), device=dev)
    path = xs.save(tmp_path / "u.h5", crossbar=xbar)
    with h5py.File(path) as f:
        assert json.loads(f["crossbar"].attrs["device"])["class"] == "test.Tagged"
    back = xs.load(path)["crossbar"].device
    assert type(back) is Tagged and back.a == 3.0 and back.batch == "wafer 7"
    np.testing.assert_array_equal(back.offsets, [0.5, -1.0])
    np.testing.assert_array_equal(back.parameters(), dev.parameters())


def test_an_unregistered_user_model_is_refused_on_save_and_load(tmp_path, tagged):
    xbar = xs.Crossbar(np.full((3, 2), 2e-5), device=Tagged())
    path = xs.save(tmp_path / "u.h5", crossbar=xbar)
    registry._MODELS.pop("test.Tagged")
    with pytest.raises(TypeError, match=r"model class .*Tagged is not registered.*xs.register_model\(Tagged\)"):
        xs.save(tmp_path / "v.h5", crossbar=xbar)
    with pytest.raises(FormatError, match=r"names the model 'test.Tagged', which is not registered.*"
                                          r"xs.register_model\(YourClass, name='test.Tagged'\)"):
        xs.load(path)


def test_an_old_module_qualname_file_of_a_user_model_loads_once_registered(tmp_path, tagged):
    path = xs.save(tmp_path / "u.h5", crossbar=xs.Crossbar(np.full((3, 2), 2e-5), device=Tagged(batch="x")))
    with h5py.File(path, "a") as f:
        spec = json.loads(f["crossbar"].attrs["device"])
        spec["class"] = f"{Tagged.__module__}:{Tagged.__qualname__}"  # as files were written before the registry
        f["crossbar"].attrs["device"] = json.dumps(spec)
    assert xs.load(path)["crossbar"].device.batch == "x"


def test_loading_never_imports_the_named_module(tmp_path):
    # `antigravity` opens a web browser when imported: it must stay unimported.
    code = f"""
import sys, json, h5py, numpy as np, xbarsolve as xs
p = xs.save({str(tmp_path / 'a.h5')!r}, crossbar=xs.Crossbar(np.full((2, 2), 1e-5)))
with h5py.File(p, "a") as f:
    f["crossbar"].attrs["device"] = json.dumps({{"class": "antigravity:geohash", "params": {{}}}})
try:
    xs.load(p)
except xs.FormatError as exc:
    print("refused" if "not registered" in str(exc) else exc)
print("antigravity" in sys.modules, "webbrowser" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["refused", "False", "False"]


def test_register_model_checks_its_arguments(tagged):
    @dataclasses.dataclass(frozen=True)
    class Other(xs.devices.Linear):
        pass

    class NotADataclass(xs.devices.Device):
        pass

    with pytest.raises(TypeError, match="must be a subclass of xbarsolve.devices.Device"):
        xs.register_model(dict)
    with pytest.raises(TypeError, match="must be a subclass"):
        xs.register_model(xs.devices.Linear())
    with pytest.raises(TypeError, match="NotADataclass must be a dataclass"):
        xs.register_model(NotADataclass)
    with pytest.raises(ValueError, match="without ':'"):
        xs.register_model(Other, name="mod:Other")
    with pytest.raises(ValueError, match="'Linear' is already registered for xbarsolve.devices:Linear"):
        xs.register_model(Other, name="Linear")
    with pytest.raises(ValueError, match="'test.Tagged' is already registered"):
        xs.register_model(Other, name="test.Tagged")
    with pytest.raises(ValueError, match="Tagged is already registered as 'test.Tagged'"):
        xs.register_model(Tagged, name="another")
    assert xs.register_model(Tagged, name="test.Tagged") is Tagged  # idempotent


def test_a_redefined_class_replaces_its_registration(tagged):
    namespace: dict = {}
    source = ("import dataclasses, xbarsolve as xs\n"
              "@dataclasses.dataclass(frozen=True)\nclass Cell(xs.devices.Linear):\n    pass\n")
    for _ in range(2):  # a notebook cell run twice defines two classes of one name
        exec(compile(source, "cell", "exec"), namespace)
        xs.register_model(namespace["Cell"], name="test.Cell")
    assert registry.model_class("test.Cell") is namespace["Cell"]


def test_the_docs_example_runs(tagged):
    import re

    from conftest import ROOT

    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "validation.md").read_text(), flags=re.S)
              if "register_model" in b]
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "docs/validation.md", "exec"), namespace)
    assert registry.model_class("BatchSinh") is namespace["BatchSinh"]
