"""Event-driven market-making backtest: canonical events -> flat arrays -> numba engine -> PnL parts.

Modules, in the order data flows through them:

- :mod:`~mm_core.backtest.event_arrays`: canonical events (iterable, Parquet run, simulator) to
  columnar numpy rows with the exchange book's best bid/ask after every row; ``.npz`` cache.
- :mod:`~mm_core.backtest.latency`: feed latency (local timestamps) and order entry/response
  latency tables (constant, lognormal, measured ages from a capture CSV, scaled, spiked).
- :mod:`~mm_core.backtest.queue`, :mod:`~mm_core.backtest.rate_limit`, :mod:`~mm_core.backtest.fees`:
  the small swappable exchange models.
- :mod:`~mm_core.backtest.engine`: the jitted event loop (exchange side + strategy side).
- :mod:`~mm_core.backtest.fair`: fair-mid series the policy quotes around and PnL is measured at.
- :mod:`~mm_core.backtest.pnl`: fees per fill, the exact PnL decomposition, equity, markouts, tails.
- :mod:`~mm_core.backtest.report`, :mod:`~mm_core.backtest.command`, :mod:`~mm_core.backtest.sweep`.
"""
