"""Shared fixtures: the bundled data sets, reduced as the lecture notes use them."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from poolwise import datasets

# JAX's persistent compilation cache stays out of the user's home: off for the suite (and the
# processes it starts); tests/test_compile_cache.py turns it on in temporary directories
os.environ["POOLWISE_COMPILE_CACHE"] = "0"


@pytest.fixture(scope="session")
def rats() -> pd.DataFrame:
    """The 70 historical rat-tumour experiments (BDA3 Table 5.1)."""
    return datasets.load("rats").query("historical == 1")


@pytest.fixture(scope="session")
def spacex() -> pd.DataFrame:
    return datasets.load("spacex")
