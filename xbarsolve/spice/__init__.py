"""ngspice cross-validation: netlists of a :class:`~xbarsolve.Crossbar` and two runners.

* :func:`write_netlist` writes a plain ngspice deck (template ``netlists/crossbar.cir.tmpl``)
  for one or many input vectors; cells go through the device/transistor ``spice_element``
  protocol, so any model that can write itself plugs in.
* :func:`solve` runs it, through the ``ngspice -b`` batch binary (reading the binary raw
  file with :func:`read_raw`) or through ngspice's shared library via PySpice in a
  short-lived worker process, and returns the same :class:`~xbarsolve.SolveResult` as
  :func:`xbarsolve.solve` with ``method="ngspice"``.
* :data:`OPTIONS` are the tightened simulator tolerances written into every deck:

  ========  ======  =========================================================
  option    value   why
  ========  ======  =========================================================
  reltol    1e-12   Newton convergence, relative (default 1e-3)
  abstol    1e-18   current tolerance, A (default 1e-12; cells carry ~1e-6 A)
  vntol     1e-15   voltage tolerance, V (default 1e-6)
  gmin      1e-24   junction leak, S (default 1e-12); a transistor's own gmin wins
  gshunt    0       no conductance from any node to ground
  itl1      500     DC Newton iteration limit (default 100)
  numdgt    17      digits of ASCII printing only (the raw files are binary)
  ========  ======  =========================================================

  For a linear array the operating point is one sparse LU solve, exact to round-off
  whatever the tolerances; they matter for nonlinear devices.  Agreement with the exact
  solver is ~1e-13 relative in the column currents (see ``docs/spice.md``).

PySpice (GPL-3) is imported only inside the worker process of ``backend="shared"``;
importing this module needs nothing beyond NumPy.
"""

from __future__ import annotations

from .netlist import OPTIONS, write_netlist
from .raw import read_raw
from .run import NgspiceError, solve

__all__ = ["solve", "write_netlist", "read_raw", "OPTIONS", "NgspiceError"]
