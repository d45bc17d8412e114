# Two commands (see README): `make demo` and `make test`. Each sets everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-slow test-gpu test-nojit bench clean

setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/bin/xbarsolve demo --out out/demo

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

test-gpu: setup
	$(PY) -m pytest -q -m gpu

# The compiled kernels' tests with Numba switched off, so coverage tools see the kernels.
test-nojit: setup
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q tests/test_linear.py tests/test_crossbar.py tests/test_io.py \
		tests/test_conversion.py tests/test_calibration.py tests/test_metrics.py tests/test_dissection.py tests/test_iterative.py
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -m "not ngspice" tests/test_newton.py

bench: setup
	$(PY) benchmarks/bench_linear.py

clean:
	rm -rf out .pytest_cache
