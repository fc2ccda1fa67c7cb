"""Shared fixtures: the bundled data sets, reduced as the lecture notes use them."""

from __future__ import annotations

import pandas as pd
import pytest

from poolwise import datasets


@pytest.fixture(scope="session")
def rats() -> pd.DataFrame:
    """The 70 historical rat-tumour experiments (BDA3 Table 5.1)."""
    return datasets.load("rats").query("historical == 1")


@pytest.fixture(scope="session")
def spacex() -> pd.DataFrame:
    return datasets.load("spacex")
