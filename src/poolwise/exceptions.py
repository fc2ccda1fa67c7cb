"""The errors and warnings poolwise raises.

User mistakes raise :class:`PoolwiseError` subclasses (which are also ``ValueError`` or
``TypeError``), so the command line can print their one-line message and exit with code 2.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "ImproperPosteriorError",
    "PoolwiseError",
    "PosteriorWarning",
    "ResourceError",
    "SamplingWarning",
    "SpecificationError",
]


class PoolwiseError(Exception):
    """Base class of every error that reports a user mistake."""


class DataError(PoolwiseError, ValueError):
    """The data table is unusable: missing columns, bad values, too few groups."""


class SpecificationError(PoolwiseError, ValueError):
    """An unknown or invalid family, pooling level, method, prior or option."""


class ImproperPosteriorError(PoolwiseError, ValueError):
    """The chosen hyperprior gives an improper posterior for these data."""


class ResourceError(PoolwiseError, MemoryError):
    """A job would need more memory (or disk) than is available (refused before it starts)."""


class SamplingWarning(UserWarning):
    """Markov chain diagnostics failed: R-hat, effective sample size or divergences."""


class PosteriorWarning(UserWarning):
    """A property of the posterior that a table of means hides (e.g. a mean that is infinite)."""


class ConvergenceWarning(UserWarning):
    """An optimiser stopped on a boundary or did not converge."""
