"""Every example script runs with tiny settings."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))
#: the notes' whole widgets workflow takes over a minute of the default run; its model is
#: fitted there by tests/test_custom.py (test_reduced_widgets_fit_recovers_alpha)
SLOW = {"radioactive_widgets"}


@pytest.mark.parametrize("script", [
    pytest.param(script, marks=pytest.mark.full) if script.stem in SLOW else script
    for script in EXAMPLES], ids=lambda p: p.stem)
def test_example_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--quick", "--out", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out
    assert list(tmp_path.glob("*.png"))
