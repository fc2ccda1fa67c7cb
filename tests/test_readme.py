"""Every Python snippet of the README runs as written (in a scratch directory)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_a_python_section():
    assert SNIPPETS and any("poolwise.load" in snippet for snippet in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.splitlines()[0][:40])
def test_snippet_runs(snippet, tmp_path, monkeypatch):
    if "import arviz as az" in snippet:
        pytest.importorskip("arviz", minversion="1.0",
                            reason="ArviZ 1.x needs Python >= 3.12 (make test313 runs this)")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        # the nested example's few draws may warn about the chains; the snippet still runs
        warnings.simplefilter("ignore")
        exec(compile(snippet, str(README), "exec"), {})
