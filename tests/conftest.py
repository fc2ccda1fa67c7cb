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


def mcse_z(a_mean: float, a_mcse: float, b_mean: float, b_mcse: float = 0.0) -> float:
    """How many Monte Carlo standard errors apart two estimates are."""
    return abs(a_mean - b_mean) / (a_mcse**2 + b_mcse**2) ** 0.5
