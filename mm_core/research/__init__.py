"""Research: features on canonical events, feature QA, fair-mid models scored out of sample.

Pipeline (each step usable alone; ``mm research`` and ``notebooks/research_walkthrough.ipynb``
chain them):

1. :mod:`.book_frames` -- events (memory, Parquet run directory, raw recording) -> flat columns ->
   top of book after every message (numba book);
2. :mod:`.features` -- mid, spread, imbalances, weighted mid, realized vol, trade-flow imbalance,
   book age, in event time and on a clock grid;
3. :mod:`.qa` -- NaN bursts, inverted timestamps, stale stretches, outliers: counted, with a
   refusal to fit when they exceed the limits;
4. :mod:`.microprice` -- Stoikov (2018) micro-price estimator;
5. :mod:`.fair_value` -- fair-mid models (naive, weighted mid, micro-price, ridge) and their JSON
   files, loaded by the backtest and the quoting engine;
6. :mod:`.evaluation` -- walk-forward, metrics in ticks, Diebold-Mariano with HAC variance;
7. :mod:`.study` / :mod:`.report` / :mod:`.command` -- the run, its verdict, the HTML report, the CLI;
8. :mod:`.sim_data` -- simulator days in memory or as a run directory, for tests.
"""

from mm_core.research.fair_value import FairMidModel, load_model, save_model

__all__ = ["FairMidModel", "load_model", "save_model"]
