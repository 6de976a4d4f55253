"""The ``refcomp`` command.

Each sub-command lives in its own module that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__

# sub-command -> module; a module that is not there yet is simply not offered.
COMMANDS = {
    "demo": "refcomp.demo",
    "bench": "refcomp.bench",
    "train": "refcomp.nn.cli",
    "compress": "refcomp.compress.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refcomp",
        description="Reference implementation of neural-network compression "
        "(quantization, pruning, low-rank, weight sharing, distillation, mixed precision).",
    )
    parser.add_argument("--version", action="version", version=f"refcomp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name and modname.startswith(exc.name):
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from .errors import RefcompError

    try:
        return int(args._run(args) or 0)
    except RefcompError as exc:
        print(f"refcomp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
