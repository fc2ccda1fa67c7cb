"""Shared by the engine tests: one table written in each layout an engine reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_table(table: pd.DataFrame, where: Path, layout: str) -> str:
    """``table`` as a CSV, a Parquet file, a glob of three Parquet files or a directory of
    them; the path or pattern to give poolwise."""
    where.mkdir(parents=True, exist_ok=True)
    if layout == "csv":
        table.to_csv(where / "t.csv", index=False)
        return str(where / "t.csv")
    if layout == "parquet":
        table.to_parquet(where / "t.parquet")
        return str(where / "t.parquet")
    for k, rows in enumerate(np.array_split(np.arange(len(table)), 3)):
        table.iloc[rows].to_parquet(where / f"part-{k}.parquet")
    return str(where / "part-*.parquet") if layout == "glob" else str(where)
