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
from ..errors import FileFormatError, RefcompError
from ..progress import Display

# sub-command -> module, imported by name when the parser is built: after main() has
# pinned BLAS's thread count, which must happen before NumPy loads (see _blas_threads).
COMMANDS = {
    "demo": "refcomp.cli.demo",
    "bench": "refcomp.cli.bench",
    "train": "refcomp.cli.train",
    "compress": "refcomp.cli.compress",
    "diff": "refcomp.cli.diff",
    "embed": "refcomp.cli.embed",
    "inspect": "refcomp.cli.inspect",
    "evaluate": "refcomp.cli.evaluate",
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


def _hint(exc: BaseException, command: str) -> str:
    hint = getattr(exc, "hint", None)
    if hint:
        return hint
    if isinstance(exc, FileFormatError):
        return "is it the file you meant: the right kind, complete, and (if refcomp wrote it) from this version?"
    if isinstance(exc, MemoryError):
        return "try smaller sizes or fewer samples"
    if isinstance(exc, OSError):
        return "check the path: does it exist, is it a file or a folder as expected, may you write there?"
    return f"see 'refcomp {command} --help'"


def _os_message(exc: OSError) -> str:
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{exc.strerror or exc}: {where}" if where else str(exc.strerror or exc)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status.

    0 success; 2 a usage mistake (argparse's, a RefcompError, an OS error such as a
    missing folder or a full disk, or memory), printed as one ``refcomp CMD: error:``
    line and a hint line, never a traceback; 130 interrupted (Ctrl-C), printed as
    one line. A traceback is left only for a bug in refcomp itself.
    """
    prog = "refcomp"
    try:
        with _blas_threads(get_num_threads()):
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:       # argparse: --help, --version, or a usage error it printed
                return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
            if not getattr(args, "_run", None):
                parser.print_help()
                return 0
            prog = f"refcomp {args.command}"
            # the command's one progress display: bars on stderr when it is a terminal, unless --quiet
            with Display(sys.stderr, enabled=not getattr(args, "quiet", False)):
                return int(args._run(args) or 0)
    except KeyboardInterrupt:
        # partial output cannot be left behind: every file is written atomically (refcomp.io.atomic)
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (refcomp demo | head): not an error; silence the flush at exit too
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (RefcompError, OSError, MemoryError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, RefcompError):
            message = _os_message(exc)
        elif isinstance(exc, MemoryError) and not str(exc):
            message = "out of memory"
        else:
            message = str(exc)
        print(f"{prog}: error: {message}", file=sys.stderr)
        print(f"{prog}: hint: {_hint(exc, prog.partition(' ')[2] or '')}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
