"""The registry of model classes that files may name.

A file never names code to import or call.  A device or transistor model is stored as
the JSON text ``{"class": NAME, "params": {field: value, ...}}`` where ``NAME`` is a name
in this registry and ``params`` are the model's dataclass fields (JSON numbers, strings,
booleans, ``null``, and ``{"__array__": [...]}`` for arrays).  Loading looks ``NAME`` up
here and calls the registered class with ``params``; a name that is not registered is a
:class:`~xbarsolve.errors.FormatError`, whatever it names.

The built-in models are registered under their class names: devices ``Linear``, ``Sinh``,
``Poly``; transistors ``Switch``, ``Resistor``, ``Level1``.  Files written before the
registry stored ``"module:QualName"`` (``"xbarsolve.devices:Linear"``); that form is read
for the built-ins and for registered classes of that module and name, and nothing is
imported to resolve it.

Your own model (a frozen dataclass subclassing :class:`~xbarsolve.devices.Device` or
:class:`~xbarsolve.transistors.Transistor`) is registered in your own code, before you
save or load a file that uses it:

>>> import dataclasses, xbarsolve as xs
>>> @xs.register_model
... @dataclasses.dataclass(frozen=True)
... class MyLinear(xs.devices.Linear):
...     pass
>>> xs.registry.model_class("MyLinear") is MyLinear
True
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from . import devices, transistors
from .errors import FormatError

__all__ = ["register_model", "model_class", "model_name", "registered_models", "model_to_json", "model_from_json"]

#: Registry name -> class.  One name per class.
_MODELS: dict[str, type] = {}
_BUILTIN = (devices.Linear, devices.Sinh, devices.Poly, transistors.Switch, transistors.Resistor, transistors.Level1)
_MAX_NAME = 200


def register_model(cls: type, name: str | None = None) -> type:
    """Register a device or transistor model class so that files may name it.

    Parameters
    ----------
    cls : type
        A dataclass subclassing :class:`~xbarsolve.devices.Device` or
        :class:`~xbarsolve.transistors.Transistor` (a file stores its init fields).
    name : str, optional
        Registry name stored in files; default the class's ``__qualname__``.  Must not
        contain ``":"`` and must not be taken by another class.

    Returns
    -------
    type
        ``cls`` itself, so ``@xs.register_model`` works as a class decorator.

    Raises
    ------
    TypeError
        If ``cls`` is not a dataclass model class.
    ValueError
        If ``name`` is malformed or already names a different class, or ``cls`` is
        already registered under another name.
    """
    if not isinstance(cls, type) or not issubclass(cls, (devices.Device, transistors.Transistor)):
        raise TypeError(f"register_model: cls must be a subclass of xbarsolve.devices.Device or "
                        f"xbarsolve.transistors.Transistor; got {cls!r}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"register_model: {cls.__qualname__} must be a dataclass (files store its fields)")
    name = cls.__qualname__ if name is None else name
    if not isinstance(name, str) or not name or ":" in name or len(name) > _MAX_NAME or not name.isprintable():
        raise ValueError(f"register_model: name must be a non-empty printable string without ':' of at most "
                         f"{_MAX_NAME} characters; got {name!r}")
    existing = _MODELS.get(name)
    if existing is not None and existing is not cls:
        if existing in _BUILTIN or _qualified(existing) != _qualified(cls):
            raise ValueError(f"register_model: name {name!r} is already registered for {_qualified(existing)}; "
                             f"choose another name")
        # The same class defined again (a re-run notebook cell, a reloaded module): replace it.
    for other, c in _MODELS.items():
        if c is cls and other != name:
            raise ValueError(f"register_model: {cls.__qualname__} is already registered as {other!r}")
    _MODELS[name] = cls
    return cls


def registered_models() -> dict[str, type]:
    """A copy of the registry: name -> class."""
    return dict(_MODELS)


def model_name(model) -> str:
    """Registry name of a model instance's class.

    Raises
    ------
    TypeError
        If the class is not registered (register it with :func:`register_model`).
    """
    cls = type(model)
    for name, c in _MODELS.items():
        if c is cls:
            return name
    raise TypeError(f"model class {_qualified(cls)} is not registered, so a file could not name it; "
                    f"call xs.register_model({cls.__qualname__}) before saving")


def model_class(name: str, *, where: str = "model") -> type:
    """The class registered under ``name`` (or under the legacy ``"module:QualName"`` form).

    Raises
    ------
    FormatError
        Naming ``where`` and ``name`` when nothing is registered under it.
    """
    if not isinstance(name, str):
        raise FormatError(f"{where}: the model name must be a string; got {name!r:.80}")
    if name in _MODELS:
        return _MODELS[name]
    if ":" in name:  # the form written before the registry: matched by name, never imported
        for cls in _MODELS.values():
            if _qualified(cls) == name:
                return cls
    known = ", ".join(sorted(_MODELS))
    raise FormatError(
        f"{where} names the model {name[:100]!r}, which is not registered; a file cannot name code to import. "
        f"Registered models: {known}. If it is your own model class, call "
        f"xs.register_model(YourClass, name={name[:100]!r}) in your code before loading"
    )


def model_to_json(model) -> str:
    """JSON text of a model instance (``"null"`` for ``None``)."""
    if model is None:
        return "null"
    name = model_name(model)
    params = {f.name: _jsonable(getattr(model, f.name)) for f in dataclasses.fields(model) if f.init}
    return json.dumps({"class": name, "params": params}, allow_nan=False)


def model_from_json(text, *, where: str = "model"):
    """Rebuild a model from :func:`model_to_json` text; ``None`` for ``"null"``.

    Parameters
    ----------
    text : str or bytes
        The stored JSON.
    where : str
        What holds the text (e.g. ``"/crossbar attribute 'device'"``), for error messages.

    Raises
    ------
    FormatError
        Naming ``where``: not JSON, not a model specification, an unregistered model name,
        an unknown parameter or a value the model refuses.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise FormatError(f"{where} is not UTF-8 text") from None
    if not isinstance(text, str):
        raise FormatError(f"{where} must be JSON text; got {type(text).__name__}")
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{where} is not valid JSON ({exc})") from None
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"class", "params"} or not isinstance(spec["params"], dict):
        raise FormatError(f'{where} must be null or {{"class": NAME, "params": {{...}}}}; got {text[:100]!r}')
    cls = model_class(spec["class"], where=where)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    params = {}
    for key, value in spec["params"].items():
        if key not in fields:
            raise FormatError(f"{where}: model {spec['class']!r} has no parameter {key[:100]!r}; "
                              f"its parameters are {sorted(fields)}")
        params[key] = _from_jsonable(value, f"{where} parameter {key!r}")
    try:
        return cls(**params)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise FormatError(f"{where}: model {spec['class']!r} refuses the stored parameters: {exc}") from None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist()}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _from_jsonable(value, where: str):
    if isinstance(value, dict):
        if set(value) != {"__array__"}:
            raise FormatError(f'{where} must be a JSON scalar or {{"__array__": [...]}}; got keys {sorted(value)[:5]}')
        try:
            arr = np.asarray(value["__array__"], dtype=np.float64)
        except (TypeError, ValueError):
            raise FormatError(f"{where} must be a numeric array") from None
        return arr
    if isinstance(value, list):
        return [_from_jsonable(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FormatError(f"{where} must be finite; got {value!r}")
        return value
    raise FormatError(f"{where} must be a JSON scalar or an array; got {type(value).__name__}")


for _cls in _BUILTIN:
    register_model(_cls)
del _cls
