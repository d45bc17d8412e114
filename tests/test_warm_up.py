"""The Newton solver's warm-up (``scripts/setup.sh``) compiles what nonlinear solves use."""

import json
import subprocess
import sys
import textwrap

# Run in a fresh interpreter, so that kernels compiled by earlier tests of the session
# cannot hide a signature the warm-up misses.
SCRIPT = textwrap.dedent('''
    import json
    import numba
    import numpy as np
    import xbarsolve as xs
    from xbarsolve.solve import _kernels, _newton_kernels
    from xbarsolve.solve.newton import warm_up

    def signatures():
        out = {}
        for module in (_newton_kernels, _kernels):
            for name in dir(module):
                f = getattr(module, name)
                if isinstance(f, numba.core.registry.CPUDispatcher):
                    out[module.__name__ + "." + name] = {str(s) for s in f.signatures}
        return out

    assert warm_up() > 0.0
    before = signatures()
    rng = np.random.default_rng(5)
    level1 = xs.transistors.Level1(vto=0.7, kp=100e-6, w=2e-6, l=0.5e-6, lambda_=0.02, v_gate=3.3)
    solved = 0
    for tr in (None, level1):
        for shape, k, kw in (((40, 24), 50, {}), ((24, 40), 50, {}), ((40, 24), 1, {}), ((30, 20), 5, {}),
                             ((17, 9), 9, {"full": True}), ((12, 12), 10, {"iteration": "chord"}),
                             ((6, 5), 2, {"iteration": "newton"})):
            G = rng.uniform(1 / 300e3, 1 / 15e3, shape)
            G.setflags(write=False)
            V = np.asfortranarray(rng.uniform(0.0, 0.4, (k, shape[0])))
            if k == 1:
                V.setflags(write=False)
            xbar = xs.Crossbar(G, r_row=1.0, r_col=1.0, r_in=1.0, r_out=1.0, device=xs.devices.Sinh(a=2.0),
                               transistor=tr)
            solved += int(xs.solve(xbar, V, **kw).converged.all())
    after = signatures()
    grown = {n: sorted(after[n] - before.get(n, set())) for n in after if after[n] - before.get(n, set())}
    print(json.dumps({"solved": solved, "grown": grown}))
''')


def test_solves_after_the_warm_up_compile_nothing():
    """After ``warm_up``, nonlinear solves of other shapes, orientations, batch sizes,
    iterations and input memory (a read-only ``G``, a read-only input of one vector, a
    Fortran-ordered input), with and without an access transistor, compile no kernel of
    the Newton path again: every signature they need is one the warm-up compiled (and
    ``setup.sh`` caches on disk, so that a first nonlinear solve only loads it)."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["solved"] == 14
    assert report["grown"] == {}, report["grown"]
