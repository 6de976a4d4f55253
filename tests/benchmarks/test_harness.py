"""refcomp bench --output edits only its own block of docs/performance.md (other agents own other sections)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from harness import BEGIN, END, THREADS_BEGIN, THREADS_END, write_block, write_section  # noqa: E402


def test_write_section_keeps_other_sections_and_prose(tmp_path):
    p = tmp_path / "performance.md"
    p.write_text("# Performance\n\n## Training speed\n\nNN numbers\n")
    write_section(str(p), "## Kernels", "table v1")
    text = p.read_text()
    assert "NN numbers" in text and "## Kernels" in text and "table v1" in text
    p.write_text(text.replace(BEGIN, "Prose about the tables.\n\n" + BEGIN) + "\n## Later section\n\nkept\n")
    write_section(str(p), "## Kernels", "table v2")
    text = p.read_text()
    assert "table v1" not in text and "table v2" in text
    assert "Prose about the tables." in text and "NN numbers" in text and "kept" in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_write_section_creates_file(tmp_path):
    p = tmp_path / "new.md"
    write_section(str(p), "## Kernels", "t")
    assert p.read_text().startswith("# Performance") and BEGIN in p.read_text()


def test_thread_block_is_written_only_between_its_own_markers(tmp_path):
    p = tmp_path / "performance.md"
    p.write_text("# Performance\n\n## Kernels\n\nprose\n")
    assert not write_block(str(p), "scaling v1", THREADS_BEGIN, THREADS_END)  # no markers: nothing written
    assert p.read_text() == "# Performance\n\n## Kernels\n\nprose\n"
    write_section(str(p), "## Kernels", "tables")
    p.write_text(p.read_text().replace(BEGIN, f"prose\n{THREADS_BEGIN}\nold\n{THREADS_END}\nafter\n{BEGIN}"))
    assert write_block(str(p), "scaling v2", THREADS_BEGIN, THREADS_END)
    text = p.read_text()
    assert "scaling v2" in text and "old" not in text and "tables" in text and "after" in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_the_machine_line_names_the_refcomp_version():
    """Every table the harness writes starts with this line: the timings trace back to the code."""
    from harness import machine

    from refcomp._version import __version__

    assert f", refcomp {__version__}, " in machine()
