"""Command-line entry point ``xbarsolve``.

Subcommands live beside what they run: each registered module provides
``add_cli_arguments(parser)`` and ``cli_main(args) -> int``, and is imported only when
its subcommand is used.

Errors: a bad argument, a missing or malformed file, or any error of the library
(:class:`~xbarsolve.errors.XbarsolveError`) prints one line ``xbarsolve: error: ...``
naming the option it concerns, and the exit status is 2.  ``--traceback`` (anywhere on
the command line) re-raises instead, for developers.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

__all__ = ["main"]

#: Exceptions reported as one line (anything else is a bug and keeps its traceback).
_REPORTED = (OSError, ValueError, KeyError, ImportError, MemoryError, RuntimeError)

# (command words, module, one-line help)
_COMMANDS = [
    (("solve",), "xbarsolve._cli_solve", "solve an array for input vectors; print or save column currents"),
    (("demo",), "xbarsolve._cli_demo", "the embedded default job: error of plain mapping, conversion, calibration; ngspice check"),
    (("compile",), "xbarsolve._cli_compile", "compile the Numba kernels into Numba's disk cache (set-up does this once)"),
    (("reproduce", "crossbar"), "xbarsolve.sweeps.crossbar", "reproduce the single-crossbar study (Figs. 11-18)"),
    (("reproduce", "cnn"), "xbarsolve.sweeps.cnn", "reproduce the CNN study (Figs. 19-21, Table 6)"),
    (("reproduce", "aras"), "xbarsolve.sweeps.aras", "writing weights on a limited accelerator (ARAS schedules, reuse)"),
    (("reproduce", "dse"), "xbarsolve.sweeps.dse", "dense-vs-sparse design-space exploration: accuracy, energy, area, latency"),
    (("validate",), "xbarsolve.validation.report", "validate the circuit model against a measured-array HDF5 file"),
    (("data", "download"), "xbarsolve._cli_data", "fetch MNIST, CIFAR-10 and the pre-trained ResNets, verify checksums"),
    (("data", "check"), "xbarsolve._cli_data", "list which reference data files are present, missing or bad"),
]

#: Command groups: help line and the name of their sub-command.
_GROUPS = {
    "reproduce": ("reproduce a study from the paper", "STUDY"),
    "data": ("reference data for the CNN studies: download and check", "ACTION"),
}


def _build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="xbarsolve", description="SPICE-exact crossbar array simulation")
    parser.add_argument("--traceback", action="store_true",
                        help="show the Python traceback of an error instead of one line (for developers)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    handlers = {}
    for words, module, help_ in _COMMANDS:
        if len(words) == 1:
            p = sub.add_parser(words[0], help=help_, description=help_)
        else:
            if words[0] not in groups:
                group_help, metavar = _GROUPS[words[0]]
                g = sub.add_parser(words[0], help=group_help, description=group_help)
                groups[words[0]] = g.add_subparsers(dest="subcommand", metavar=metavar, required=True)
            p = groups[words[0]].add_parser(words[1], help=help_, description=help_)
        key = " ".join(words)
        p.set_defaults(_key=key, _flags={})
        handlers[key] = module
        # Only the chosen command's module is imported to add its arguments.
        if argv[: len(words)] == list(words):
            mod = importlib.import_module(module)
            adder = getattr(mod, f"add_{words[-1]}_arguments", None) or mod.add_cli_arguments
            adder(p)
            flags = {a.dest: max(a.option_strings, key=len) if a.option_strings else a.dest for a in p._actions}
            p.set_defaults(_flags=flags)
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    """Run the ``xbarsolve`` command line; returns the exit status (2 on any error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    parser, handlers = _build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and its one-line error (or --help)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "_key", None):
        parser.print_help()
        return 2
    try:
        mod = importlib.import_module(handlers[args._key])
        runner = getattr(mod, f"{args._key.split()[-1]}_main", None) or mod.cli_main
        return int(runner(args) or 0)
    except SystemExit as exc:  # a runner's own message: `raise SystemExit("--opt: ...")`
        if isinstance(exc.code, int) or exc.code is None:
            return int(exc.code or 0)
        if show_traceback:
            raise
        return _report(str(exc.code), args)
    except KeyboardInterrupt:
        print("xbarsolve: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from .errors import XbarsolveError

        if show_traceback or not isinstance(exc, (XbarsolveError,) + _REPORTED):
            raise
        return _report(_describe(exc), args, getattr(exc, "filename", None), exc.__traceback__)


def _describe(exc: BaseException) -> str:
    """One readable sentence of an exception."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc)
    if isinstance(exc, MemoryError):
        text = f"out of memory{': ' + text if text else ''}"
    return text or type(exc).__name__


def _report(text: str, args: argparse.Namespace, filename=None, tb=None) -> int:
    """Print ``xbarsolve: error: [--option: ]first line`` and return 2."""
    lines = text.strip().splitlines() or [""]
    line = lines[0]
    if len(lines) > 1:
        line += f" [{len(lines) - 1} more line(s): run with --traceback]"
    option = None if line.startswith("--") else _option_for(args, line, filename, tb)
    print(f"xbarsolve: error: {option + ': ' if option else ''}{line}", file=sys.stderr)
    return 2


def _option_for(args: argparse.Namespace, text: str, filename=None, tb=None) -> str | None:
    """The command-line option an error is about, if one can be told.

    In order: the option whose file or folder the message names (the longest match); the
    option whose destination name starts the message (``"r_row must be ..."``); the
    option whose value the failing code held in a local variable (innermost frame).
    """
    options = {dest: value for dest, value in vars(args).items() if not dest.startswith("_")}
    best, best_len = None, 0
    for dest, value in options.items():
        if not isinstance(value, (str, Path)):
            continue
        value = str(value)
        if len(value) < 2 or not any(c in value for c in "/."):
            continue
        hit = (filename is not None and str(filename) == value) or value in text
        if hit and len(value) > best_len:
            best, best_len = dest, len(value)
    if best is None:
        best = next((dest for dest in options if re.match(rf"{re.escape(dest)}\b", text)), None)
    if best is None and tb is not None:
        held = {id(v): dest for dest, v in options.items()
                if isinstance(v, Path) or (isinstance(v, str) and any(c in v for c in "/."))}
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            dest = next((held[id(v)] for v in frame.f_locals.values() if id(v) in held), None)
            if dest is not None:
                best = dest
                break
    if best is None:
        return None
    flags = getattr(args, "_flags", {})
    return flags.get(best, "--" + best.replace("_", "-"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
