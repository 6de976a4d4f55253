"""refcomp bench --output edits only its own block of docs/performance.md (other agents own other sections)."""

from refcomp.bench import BEGIN, END, write_section


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
