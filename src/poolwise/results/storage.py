"""How a fit is written to and read from a file: an ArviZ DataTree in NetCDF.

The tree's attributes say what the file holds, as JSON text (NetCDF attributes are flat):

``poolwise_format``
    :data:`FORMAT_VERSION`; a reader refuses a newer one.
``kind``
    The model kind (``rates``, ``normal``, ``nig``, ``mixed``, ``nested``, ``custom``).
``model``
    The model's specification, enough to build it again (``Model(**spec)``).
``data``
    What it was fitted to beyond the ``observed_data`` / ``constant_data`` groups: the
    grouping column's name, notes on the data.
``fitted``
    What fitting found besides draws: empirical-Bayes estimates, the priors as resolved
    for these data, timings, sampler statistics.

Tables a model needs whole (a mixed model's columns) go in the group ``input_data``,
one variable per column, with their categories in its attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from poolwise import _arviz
from poolwise._version import __version__
from poolwise.exceptions import SpecificationError

__all__ = ["FORMAT_VERSION", "FitRecord", "dataset_to_table", "read", "record_attrs",
           "table_to_dataset"]

#: the version of this layout; a file with a larger one was written by a newer poolwise
FORMAT_VERSION = 1


class FitRecord:
    """The parsed attributes of a saved fit."""

    def __init__(self, tree: xr.DataTree) -> None:
        attrs = tree.attrs
        self.tree = tree
        self.kind = str(attrs["kind"])
        self.model: dict[str, Any] = json.loads(attrs["model"])
        self.data: dict[str, Any] = json.loads(attrs["data"])
        self.fitted: dict[str, Any] = json.loads(attrs["fitted"])


def record_attrs(kind: str, model: Mapping[str, Any], data: Mapping[str, Any],
                 fitted: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a fit's tree (module docstring)."""
    return {"poolwise_format": FORMAT_VERSION, "poolwise_version": __version__, "kind": kind,
            "model": json.dumps(dict(model), default=_plain),
            "data": json.dumps(dict(data), default=_plain),
            "fitted": json.dumps(dict(fitted), default=_plain)}


def _plain(value: Any) -> Any:
    """NumPy values as Python values for JSON."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read(path: str | Path, kinds: tuple[str, ...]) -> FitRecord:
    """Open a saved fit and check that this poolwise can read it (one-line errors)."""
    path = Path(path)
    if not path.exists():
        raise SpecificationError(f"no file {str(path)!r}")
    try:
        tree = _arviz.load(path)
    except (OSError, ValueError) as error:
        raise SpecificationError(
            f"{str(path)!r} is not a NetCDF file poolwise can read ({error})") from error
    attrs = tree.attrs
    if "poolwise_format" not in attrs:
        raise SpecificationError(
            f"{str(path)!r} was not written by poolwise's save() (or by a poolwise older "
            "than format 1): it has no 'poolwise_format' attribute")
    version = int(attrs["poolwise_format"])
    if version > FORMAT_VERSION:
        raise SpecificationError(
            f"{str(path)!r} has format {version}, written by poolwise "
            f"{attrs.get('poolwise_version', '?')}; this poolwise ({__version__}) reads up to "
            f"format {FORMAT_VERSION}: upgrade poolwise")
    kind = str(attrs.get("kind"))
    if kind not in kinds:
        raise SpecificationError(
            f"{str(path)!r} holds a fit of unknown kind {kind!r}; this poolwise knows "
            f"{', '.join(kinds)}")
    return FitRecord(tree)


def table_to_dataset(table: pd.DataFrame) -> xr.Dataset:
    """A table's columns as variables over the dimension ``row`` (categories kept in the
    attributes, so that :func:`dataset_to_table` restores categorical columns)."""
    data_vars = {}
    for name, column in table.items():
        attrs: dict[str, Any] = {}
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = column.cat.categories
            attrs = {"categories": json.dumps(categories.tolist(), default=_plain),
                     "ordered": int(column.cat.ordered)}
            values = np.asarray(column.cat.codes.to_numpy(), dtype=np.int64)
        elif pd.api.types.is_bool_dtype(column):
            values = column.to_numpy(dtype=np.int8)
            attrs = {"bool": 1}
        elif pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy()
        else:
            values = column.astype(str).to_numpy().astype(str)
        data_vars[str(name)] = xr.Variable(("row",), values, attrs=attrs)
    return xr.Dataset(data_vars, coords={"row": np.arange(len(table))})


def dataset_to_table(dataset: xr.Dataset) -> pd.DataFrame:
    """The table :func:`table_to_dataset` stored."""
    columns: dict[str, Any] = {}
    for name, variable in dataset.data_vars.items():
        values = np.asarray(variable.values)
        if "categories" in variable.attrs:
            categories = json.loads(variable.attrs["categories"])
            columns[str(name)] = pd.Categorical.from_codes(
                values.astype(int), categories=categories,
                ordered=bool(variable.attrs.get("ordered", 0)))
        elif "bool" in variable.attrs:
            columns[str(name)] = values.astype(bool)
        elif values.dtype.kind in "OSU":
            columns[str(name)] = values.astype(str)
        else:
            columns[str(name)] = values
    return pd.DataFrame(columns)
