"""``refcomp bench`` runs benchmarks/harness.py of a source checkout, and says so when there is none."""

from refcomp.cli import bench, main


def test_the_harness_of_this_checkout_is_found():
    assert bench.HARNESS.is_file()
    assert bench._harness().HELP == bench.HELP


def test_without_a_checkout_the_command_says_what_it_needs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "HARNESS", tmp_path / "benchmarks" / "harness.py")
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "refcomp bench: error:" in err and "source checkout" in err
