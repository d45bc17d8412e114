"""Constructor validation: bad input fails early, naming the argument and the range."""

from __future__ import annotations

import numpy as np
import pytest

import xbarsolve as xs
from xbarsolve.errors import SingularNetworkError
from xbarsolve.solve.sparse import solve_sparse


@pytest.mark.parametrize(
    "G,match",
    [
        (np.full((3, 3), np.nan), r"G must be finite and >= 0 S; G\[0, 0\]"),
        (np.array([[1e-5, -1e-6]]), r"G\[0, 1\] = -1e-06"),
        (np.ones(4), r"shape \(m, n\)"),
        (np.zeros((0, 3)), r"m, n >= 1"),
        (np.array([["a"]]), "real conductances"),
    ],
)
def test_bad_conductances(G, match):
    with pytest.raises(ValueError, match=match):
        xs.Crossbar(G)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(r_row=-1.0), r"r_row must be a finite resistance >= 0 ohm"),
        (dict(r_row="abc"), r"r_row must be a resistance in ohm .* got 'abc'"),
        (dict(r_col=np.inf), r"r_col must be a finite resistance"),
        (dict(r_row=np.ones((3, 3))), r"r_row must be a scalar or an array of shape \(3, 2\)"),
        (dict(r_col=np.array([[1.0, 1.0, 1.0], [1.0, np.nan, 1.0]])), r"r_col\[1, 1\] = nan"),
        (dict(r_in=np.ones(2)), r"r_in must be a scalar or an array of shape \(3,\)"),
        (dict(drive="top"), r"drive must be one of \('left', 'right', 'both'\)"),
        (dict(sense="left"), r"sense must be one of"),
    ],
)
def test_bad_parasitics(kw, match):
    with pytest.raises(ValueError, match=match):
        xs.Crossbar(np.full((3, 3), 1e-5), **kw)


def test_bad_models():
    with pytest.raises(TypeError, match="transistor must be None or"):
        xs.Crossbar(np.ones((2, 2)) * 1e-5, transistor="nmos")
    with pytest.raises(ValueError, match="r_on must be a finite resistance >= 0"):
        xs.transistors.Resistor(r_on=-5)


def test_bad_inputs():
    xbar = xs.Crossbar(np.full((3, 2), 1e-5))
    with pytest.raises(ValueError, match=r"V must have shape \(3,\) or \(batch, 3\)"):
        xs.solve(xbar, np.ones(4))
    with pytest.raises(ValueError, match=r"V must be finite; V\[0, 1\] = nan"):
        xs.solve(xbar, np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="method must be"):
        xs.solve(xbar, np.ones(3), method="magic")


def test_crossbar_is_frozen_and_copies_its_arrays():
    G = np.full((2, 2), 1e-5)
    xbar = xs.Crossbar(G)
    G[0, 0] = 1.0
    assert xbar.G[0, 0] == 1e-5
    with pytest.raises(ValueError):
        xbar.G[0, 0] = 2.0
    with pytest.raises(AttributeError):
        xbar.r_row = 3.0


def test_open_cells_are_allowed_and_exact(rng):
    G = rng.uniform(1e-5, 6e-5, (5, 4))
    G[:, 2] = 0.0  # a column of open cells carries no current
    res = xs.solve(xs.Crossbar(G), rng.uniform(0, 0.4, (2, 5)), full=True)
    assert np.all(res.currents[:, 2] == 0.0)


def test_singular_network_is_reported(monkeypatch):
    # A valid Crossbar is never singular (see its Notes); the sparse path's checks still
    # catch a network that would be, here a short of two sources added by hand.
    from xbarsolve.solve import sparse

    real = sparse.branches

    def shorted(x):
        a, b, r, n = real(x)
        m, k = x.shape
        return np.append(a, 2 * m * k), np.append(b, 2 * m * k + 1), np.append(r, 0.0), n

    monkeypatch.setattr(sparse, "branches", shorted)
    xbar = xs.Crossbar(np.full((2, 2), 1e-5))
    with pytest.raises(SingularNetworkError, match="shorts two ideal sources"):
        solve_sparse(xbar, np.ones((1, 2)))


def test_floating_node_is_reported(monkeypatch):
    from xbarsolve.solve import sparse

    real = sparse.branches

    def floating(x):  # cut row 0 from its driver and from its cells: its wire floats
        a, b, r, n = real(x)
        m, k = x.shape
        driver = (b >= 2 * m * k) & (b < 2 * m * k + m) & (a < k)  # T(0, j) -> a source
        cells = (a < k) & (b >= m * k) & (b < 2 * m * k)
        keep = ~(driver | cells)
        return a[keep], b[keep], r[keep], n

    monkeypatch.setattr(sparse, "branches", floating)
    with pytest.raises(SingularNetworkError, match="no path to a source or to ground"):
        solve_sparse(xs.Crossbar(np.full((3, 3), 1e-5)), np.ones((1, 3)))


def test_linear_method_is_refused_for_a_nonlinear_array():
    xbar = xs.Crossbar(np.full((3, 2), 1e-5), device=xs.devices.Sinh(a=2.0))
    with pytest.raises(ValueError, match="linear arrays only"):
        xs.solve(xbar, np.full(3, 0.1), method="block")



def test_content_key_names_the_circuit():
    """Equal keys for equal circuits; any field, a model parameter or one bit of one
    conductance changes it; a value whose content cannot be read off gives no key."""
    import hashlib
    from dataclasses import dataclass

    from xbarsolve.crossbar import _feed_key
    from xbarsolve.devices import Sinh
    from xbarsolve.transistors import Level1

    G = np.random.default_rng(0).uniform(1e-6, 1e-4, (5, 4))
    base = dict(r_row=1.0, r_col=np.full((4, 4), 2.0), r_in=0.5, r_out=0.5, transistor=Level1(), device=Sinh(a=2.0))
    key = xs.Crossbar(G, **base).content_key()
    assert isinstance(key, bytes) and xs.Crossbar(G.copy(), **base).content_key() == key
    G2 = G.copy()
    G2[3, 2] = np.nextafter(G2[3, 2], 1.0)
    r_col = np.full((4, 4), 2.0)
    r_col[1, 3] = 2.5
    changed = [dict(G=G2), dict(r_row=1.5), dict(r_col=r_col), dict(drive="both"), dict(sense="top"),
               dict(transistor=Level1(vto=0.6)), dict(transistor=None), dict(device=Sinh(a=2.5))]
    keys = {xs.Crossbar(**{"G": G, **base, **c}).content_key() for c in changed}
    assert key not in keys and len(keys) == len(changed)

    @dataclass(frozen=True)
    class Holder:
        law: object

    assert _feed_key(hashlib.blake2b(), "x", Holder(law=(1.0, np.ones(3))))
    assert not _feed_key(hashlib.blake2b(), "x", Holder(law=lambda v: v))  # a function: no key
