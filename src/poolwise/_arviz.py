"""Everything poolwise asks of ArviZ, in one module.

On Python ≥ 3.12 poolwise installs ArviZ 1.x (``import arviz as az`` then reads any
``fit.tree``: ``az.summary``, ``az.plot_trace``); ArviZ 1.x needs Python 3.12, so on 3.11
poolwise installs its parts ``arviz-base`` and ``arviz-stats`` at 0.8, the same
``xarray.DataTree`` design. The calls below are the same in both, so only this module
would change if they parted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

#: the attribute of a variable that :func:`save_in_chunks` wrote: :func:`load` leaves it in
#: the file, read when it is indexed
ON_DEMAND = "poolwise_on_demand"
#: the size of the HDF5 chunks of such a variable (a read of one group reads about this)
HDF5_CHUNK_BYTES = 2**20
#: groups whose variables are draws, with leading (chain, draw) dimensions
SAMPLED_GROUPS = ("posterior", "log_likelihood", "sample_stats", "posterior_predictive",
                  "prior", "prior_predictive")


def make_datatree(
    groups: dict[str, dict[str, np.ndarray]],
    *,
    dims: dict[str, list[str]],
    coords: dict[str, Any],
    attrs: dict[str, Any],
) -> xr.DataTree:
    """An ArviZ DataTree from arrays shaped (chain, draw, ...) for the sampled groups.

    Built with xarray directly, in ArviZ's layout (``posterior``, ``log_likelihood``,
    ``sample_stats`` with ``chain`` and ``draw`` dimensions; ``observed_data`` without),
    which is several times faster than ``arviz_base.from_dict`` for small fits.
    """
    indexes = {name: _index(name, values) for name, values in coords.items()}
    datasets = {}
    for name, variables in groups.items():
        sampled = name in SAMPLED_GROUPS
        data_vars: dict[str, Any] = {}
        used: set[str] = set()
        for var, values in variables.items():
            values = np.asarray(values)
            var_dims = (("chain", "draw") if sampled else ()) + tuple(dims.get(var, ()))
            if len(var_dims) != values.ndim:
                raise ValueError(f"{name}/{var}: shape {values.shape} does not fit {var_dims}")
            data_vars[var] = (var_dims, values)
            used.update(var_dims)
            if sampled:
                chains, draws = values.shape[:2]
        group_indexes = {k: index for k, index in indexes.items() if k in used}
        if sampled:
            group_indexes |= {"chain": _index("chain", np.arange(chains)),
                              "draw": _index("draw", np.arange(draws))}
        coordinates = xr.Coordinates(  # the given values (the index's text: 0.2 s a million)
            {k: coords[k] if k in coords else index.index.to_numpy()
             for k, index in group_indexes.items()}, indexes=group_indexes)
        datasets[f"/{name}"] = xr.Dataset(data_vars, coords=coordinates)
    tree = xr.DataTree.from_dict(datasets)
    tree.attrs.update(attrs)
    return tree


def _index(name: str, values: Any) -> Any:
    """The index of one coordinate, built once for every group that uses it (xarray would
    hash a million labels again for each group: 0.4 s apiece)."""
    import pandas as pd
    from xarray.indexes import PandasIndex

    values = np.asarray(values)
    return PandasIndex(pd.Index(values), name, coord_dtype=values.dtype)


def diagnostics(posterior: xr.Dataset) -> dict[str, xr.Dataset]:
    """Bulk and tail ESS, rank-normalised split R-hat and the MCSE of the mean.

    A constant quantity (the unit diagonal of a correlation matrix) has no R-hat: NaN,
    without NumPy's warning about 0/0.
    """
    import arviz_stats as azs

    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "ess_bulk": azs.ess(posterior, method="bulk"),
            "ess_tail": azs.ess(posterior, method="tail"),
            "r_hat": azs.rhat(posterior),
            "mcse_mean": azs.mcse(posterior, method="mean"),
        }


def pointwise_ecdf_band(prob: float, reps: int, points: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise ``prob`` band of the ECDF of ``reps`` uniform values at ``points``
    (binomial quantiles, as fractions): arviz-stats' step of the simultaneous band of
    Säilynoja, Bürkner & Vehtari (2022)."""
    from arviz_stats.ecdf_utils import get_pointwise_confidence_band

    lower, upper = get_pointwise_confidence_band(prob, reps, points)
    return np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def loo(tree: xr.DataTree, pointwise: bool = False) -> Any:
    """PSIS-LOO of the pointwise log likelihood (``ELPDData``; with ``pointwise`` its
    ``elpd_i`` and ``pareto_k`` per point)."""
    import arviz_stats as azs

    return azs.loo(tree, pointwise=pointwise)


def compare(elpds: dict[str, Any]) -> Any:
    """ArviZ's comparison of pointwise ``loo`` results: elpd, its difference from the best
    and that difference's standard error (``dse``), stacking weights; best first."""
    import arviz_stats as azs

    return azs.compare(elpds, method="stacking")


def save(tree: xr.DataTree, path: str | Path) -> None:
    _encoded_text(tree).to_netcdf(path, engine="h5netcdf", encoding=_text_encoding(tree))


def _text_encoding(tree: xr.DataTree) -> dict[str, dict[str, dict[str, str]]]:
    """Text variables (group labels) stored as fixed-width UTF-8 character arrays rather
    than HDF5's variable-length strings: a million labels write in a third of the time,
    read four times faster and take a third of the space; xarray decodes them to text."""
    encoding: dict[str, dict[str, dict[str, str]]] = {}
    for node in tree.subtree:
        text = {str(name): {"dtype": "S1"} for name, variable in node.variables.items()
                if variable.dtype.kind == "U"}
        if text:
            encoding[node.path] = text
    return encoding


def _encoded_text(tree: xr.DataTree) -> xr.DataTree:
    """The tree with each text variable already UTF-8 bytes, marked ``_Encoding: utf-8``
    as xarray marks those it encodes (and decodes to text when reading): xarray encodes
    with a Python loop, 1 s a million labels; through Arrow it takes milliseconds. The
    encoded variables carry no index (nothing is hashed again)."""
    nodes = {}
    for node in tree.subtree:
        dataset = node.to_dataset()
        encoded = {}
        for name, variable in dataset.variables.items():
            if variable.dtype.kind == "U":
                source = (dataset.indexes[name] if name in dataset.indexes
                          else variable.values)
                encoded[name] = xr.Variable(variable.dims, utf8_bytes(source),
                                            {**variable.attrs, "_Encoding": "utf-8"})
        if encoded:
            dataset = dataset.drop_indexes([name for name in encoded if name in dataset.indexes])
            dataset = dataset.assign_coords(xr.Coordinates(
                {k: v for k, v in encoded.items() if k in dataset.coords}, indexes={}))
            dataset = dataset.assign({k: v for k, v in encoded.items()
                                      if k not in dataset.coords})
        nodes[node.path] = dataset
    out = xr.DataTree.from_dict(nodes)
    out.attrs.update(tree.attrs)
    return out


def utf8_bytes(text: Any) -> np.ndarray:
    """Text values (a NumPy or pandas array of ``str``) as fixed-width UTF-8 bytes (NumPy
    ``S``), as wide as the longest, each padded with NUL bytes: the bytes Arrow holds for
    the text, laid into rows by their lengths, with no Python loop."""
    import pyarrow as pa

    shape = np.shape(text)
    flat = np.ravel(text) if isinstance(text, np.ndarray) else text
    array = pa.array(flat, type=pa.large_string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:][:len(array) + 1]
    data = np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    rows = np.zeros((len(array), width), dtype=np.uint8)
    # row-major order of the cells below each row's length is the order of the bytes
    rows[np.arange(width) < lengths[:, None]] = data[offsets[0]:offsets[-1]]
    return rows.view(f"S{width}").reshape(shape)


def save_in_chunks(tree: xr.DataTree, path: str | Path, *, group: str, name: str,
                   dims: tuple[str, ...], shape: tuple[int, ...],
                   chunks: Iterable[tuple[slice, np.ndarray]]) -> None:
    """Write ``tree`` and, into its ``group``, the float variable ``name`` of ``shape``
    filled slice by slice along its last dimension from ``chunks`` — (slice, values)
    pairs — so that the whole array is never in memory.

    ``dims`` must be dimensions of that group (its coordinates). The variable is marked
    :data:`ON_DEMAND`; the file stays one that ``xarray.open_datatree`` reads, with the
    variable lazily. It is written to a hidden file beside ``path`` that replaces ``path``
    only when complete.
    """
    import h5netcdf

    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        _encoded_text(tree).to_netcdf(partial, engine="h5netcdf",
                                      encoding=_text_encoding(tree))
        # HDF5 chunks of at most HDF5_CHUNK_BYTES, as even as can be (a file holds whole
        # chunks, so the last one is not mostly empty)
        widest = max(1, HDF5_CHUNK_BYTES // max(math.prod(shape[:-1]) * 8, 1))
        width = max(1, -(-shape[-1] // -(-shape[-1] // widest)))
        with h5netcdf.File(partial, "a") as file:
            variable = file[group].create_variable(
                name, dims, dtype="f8", chunks=(*shape[:-1], width), fillvalue=np.nan)
            variable.attrs[ON_DEMAND] = 1
            for where, values in chunks:
                variable[..., where] = values
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def load(path: str | Path) -> xr.DataTree:
    """The tree saved at ``path``, read into memory but for variables marked
    :data:`ON_DEMAND`, which stay in the file (lazy: indexing one reads only what it
    selects; never cached whole)."""
    with xr.open_datatree(path, engine="h5netcdf", cache=False) as tree:
        for node in tree.subtree:
            for variable in node.variables.values():
                if not variable.attrs.get(ON_DEMAND):
                    variable.load()
        return tree
