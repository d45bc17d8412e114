# Two commands (see README): `make demo` and `make test`. Each sets everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-slow bench clean

setup:
	@./scripts/setup.sh

demo: setup
	$(VENV)/bin/xbarsolve demo --out out/demo

test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) benchmarks/bench_linear.py

clean:
	rm -rf out .pytest_cache
