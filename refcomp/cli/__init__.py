"""The ``refcomp`` command.

Each sub-command lives in its own module that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from .._version import __version__
from ..backend import get_num_threads
from ..errors import RefcompError

# sub-command -> module, imported by name when the parser is built: after main() has
# pinned BLAS's thread count, which must happen before NumPy loads (see _blas_threads).
COMMANDS = {
    "demo": "refcomp.cli.demo",
    "bench": "refcomp.cli.bench",
    "train": "refcomp.cli.train",
    "compress": "refcomp.cli.compress",
    "diff": "refcomp.cli.diff",
    "embed": "refcomp.cli.embed",
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
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


@contextlib.contextmanager
def _blas_threads(n: int):
    """Run the command's BLAS calls on ``n`` threads (refcomp's thread count, 1 by default).

    Why: training and compression results depend on the order of BLAS's float
    sums, which depends on its thread count; pinning it makes every command
    reproducible bit for bit on any machine (and at LeNet sizes one thread is
    also the fastest). A BLAS reads its thread count when it is loaded, so the
    environment variables are set (unless the user set them) before NumPy and
    SciPy load theirs; a BLAS already loaded (``main`` called from Python) is
    limited through threadpoolctl when it is installed (it comes with
    scikit-learn).
    """
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(n))
    import numpy  # noqa: F401  (loads NumPy's BLAS, so threadpoolctl can see it)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def main(argv: list[str] | None = None) -> int:
    with _blas_threads(get_num_threads()):
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 0

        try:
            return int(args._run(args) or 0)
        except RefcompError as exc:
            print(f"refcomp {args.command}: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
