#!/usr/bin/env bash
# Set up everything xbarsolve needs on Debian/Ubuntu: the system ngspice library and a
# virtual environment with the Python dependencies. Idempotent; never half-installs:
# without root and without ngspice it prints the one apt line to run and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
APT_PKGS="ngspice libngspice0 libngspice0-dev"

have_ngspice() {
    command -v ngspice >/dev/null 2>&1 && { ldconfig -p 2>/dev/null | grep -q 'libngspice\.so ' || ls /usr/lib/*/libngspice.so >/dev/null 2>&1; }
}

if ! have_ngspice; then
    if [ "$(id -u)" = 0 ]; then
        echo "[setup] installing $APT_PKGS"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq $APT_PKGS >/dev/null
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        echo "[setup] installing $APT_PKGS with sudo"
        sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PKGS >/dev/null
    else
        echo "[setup] ngspice is missing and this user cannot install system packages. Run:" >&2
        echo "    sudo apt-get install -y $APT_PKGS" >&2
        echo "then run this command again." >&2
        exit 1
    fi
    have_ngspice || { echo "[setup] ngspice still missing after apt-get; see the messages above" >&2; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV" || { echo "[setup] '$PYTHON -m venv' failed; install python3-venv (apt-get install -y python3-venv)" >&2; exit 1; }
fi
stamp="$VENV/.xbarsolve-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing xbarsolve and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    # Compile the Numba kernels into Numba's disk cache now (the demo's and the linear
    # solver's, seconds; the Newton solver's for the built-in models, ~1.5 min on two
    # cores), so that `make demo` and a first nonlinear solve load them, not compile them.
    "$VENV/bin/xbarsolve" compile | sed 's/^/[setup] /'
    touch "$stamp"
fi
