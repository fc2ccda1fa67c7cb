"""Everything poolwise asks of ArviZ, in one module.

On Python ≥ 3.12 poolwise installs ArviZ 1.x (``import arviz as az`` then reads any
``fit.tree``: ``az.summary``, ``az.plot_trace``); ArviZ 1.x needs Python 3.12, so on 3.11
poolwise installs its parts ``arviz-base`` and ``arviz-stats`` at 0.8, the same
``xarray.DataTree`` design. The calls below are the same in both, so only this module
would change if they parted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

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
        coordinates = xr.Coordinates(
            {k: coords.get(k, index.index.to_numpy()) for k, index in group_indexes.items()},
            indexes=group_indexes)
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
    tree.to_netcdf(path, engine="h5netcdf")


def load(path: str | Path) -> xr.DataTree:
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()
