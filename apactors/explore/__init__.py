"""Exploration beyond one schedule: shrinking failing traces and parallel runs.

* :mod:`apactors.explore.shrink` — ``apactors shrink``: delta debugging of a failing trace;
* :mod:`apactors.explore.parallel` — ``--jobs N``: a run split over worker processes, merged so the
  result equals the sequential run's;
* :mod:`apactors.explore.toml` — writing scenarios back as TOML.

The strategies themselves (random, rr, pct, portfolio, dfs) live in :mod:`apactors.engine`.
"""
