"""Strategies: pure decision functions, regimes with hysteresis, hard risk limits.

See ``STRATEGY_SEAM`` (the seam, registry and pipeline) for how the pieces are called; every
module here is pure logic over float64 arrays -- no I/O, no clock, no randomness -- so the backtest
and the paper/live runners run the same code on the same arrays.
"""
