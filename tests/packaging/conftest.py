"""Shows how long the wheel test's stages took, after the run (build, venv, pip install, commands)."""

import sys


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get(f"{__package__}.test_wheel")
    timings = getattr(module, "TIMINGS", None)
    if timings:
        terminalreporter.write_line("test_wheel timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
