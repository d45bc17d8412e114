"""Command-line entry point ``xbarsolve``.

Subcommands live beside what they run: each registered module provides
``add_cli_arguments(parser)`` and ``cli_main(args) -> int``, and is imported only when
its subcommand is used.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# (command words, module, one-line help)
_COMMANDS = [
    (("solve",), "xbarsolve._cli_solve", "solve an array for input vectors; print or save column currents"),
    (("demo",), "xbarsolve._cli_solve", "the embedded default job: 144x16 and 576x64 reference arrays"),
    (("reproduce", "crossbar"), "xbarsolve.sweeps.crossbar", "reproduce the single-crossbar study (Figs. 11-18)"),
    (("reproduce", "cnn"), "xbarsolve.sweeps.cnn", "reproduce the CNN study (Figs. 19-21, Table 6)"),
    (("reproduce", "dse"), "xbarsolve.sweeps.dse", "dense-vs-sparse design-space exploration: accuracy, energy, area, latency"),
    (("validate",), "xbarsolve.validation.report", "validate the circuit model against a measured-array HDF5 file"),
]


def _build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(prog="xbarsolve", description="SPICE-exact crossbar array simulation")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    handlers = {}
    for words, module, help_ in _COMMANDS:
        if len(words) == 1:
            p = sub.add_parser(words[0], help=help_, description=help_)
        else:
            if words[0] not in groups:
                g = sub.add_parser(words[0], help=f"{words[0]} a study from the paper")
                groups[words[0]] = g.add_subparsers(dest="subcommand", metavar="STUDY", required=True)
            p = groups[words[0]].add_parser(words[1], help=help_, description=help_)
        key = " ".join(words)
        p.set_defaults(_key=key)
        handlers[key] = module
        # Only the chosen command's module is imported to add its arguments.
        if argv[: len(words)] == list(words):
            mod = importlib.import_module(module)
            adder = getattr(mod, f"add_{words[-1]}_arguments", None) or mod.add_cli_arguments
            adder(p)
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    """Run the ``xbarsolve`` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = _build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_key", None):
        parser.print_help()
        return 2
    mod = importlib.import_module(handlers[args._key])
    runner = getattr(mod, f"{args._key.split()[-1]}_main", None) or mod.cli_main
    return int(runner(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
