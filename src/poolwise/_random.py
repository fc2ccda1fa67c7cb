"""One rule for every random stream: the user's seed and the purpose of the stream.

Each purpose (fitting, the chains' starting points, predictions, posterior and prior
predictive draws, ...) draws from ``numpy.random.default_rng([seed, STREAM])`` or from the
JAX key ``fold_in(PRNGKey(seed), STREAM)``. The same seed gives the same outputs; streams of
different purposes, or of different seeds, are independent (NumPy's ``SeedSequence`` hashes
the whole list, so ``[0, 1]`` and ``[1, 0]`` share nothing). Never ``seed + k``: that would
make a fit with seed 0 predict from the stream a fit with seed 1 samples from.

>>> a, b = generator(3, Stream.PREDICT), generator(3, Stream.PREDICT)
>>> bool(a.random() == b.random())
True
>>> bool(generator(3, Stream.FIT).random() == generator(4, Stream.FIT).random())
False
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np

__all__ = ["Stream", "generator", "jax_key"]


class Stream(IntEnum):
    """What a stream of random numbers is for."""

    FIT = 0
    #: where Markov chains start
    INIT = 1
    PREDICT = 2
    POSTERIOR_PREDICTIVE = 3
    PRIOR_PREDICTIVE = 4
    #: Monte Carlo inside a summary (e.g. the sampling distribution of EB estimates)
    SUMMARY = 5
    #: draws made after sampling from what the sampler integrated out
    CONDITIONAL = 6
    #: the same, every group at one posterior draw (split by chain and draw: ranks)
    CONDITIONAL_AT_DRAW = 7
    #: simulation-based calibration: one stream per replication (its index after it)
    CALIBRATION = 8
    #: empirical Bayes's hyperparameters drawn from their sampling distribution
    #: (:mod:`poolwise.inference.eb_intervals`)
    HYPERPARAMETERS = 9


def generator(seed: int, stream: Stream, *more: int) -> np.random.Generator:
    """The NumPy generator of ``stream`` for ``seed`` (``more`` splits it further)."""
    return np.random.default_rng([int(seed), int(stream), *(int(m) for m in more)])


def jax_key(seed: int, stream: Stream, *more: int) -> Any:
    """The JAX key of ``stream`` for ``seed``: ``PRNGKey(seed)`` folded with the stream."""
    import jax

    key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(stream))
    for value in more:
        key = jax.random.fold_in(key, int(value))
    return key
