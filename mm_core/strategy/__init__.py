"""Strategies: pure decision logic over explicit state, the same compiled step in backtest, paper
and live trading.

A strategy is one module (``NAME``, ``Params``, ``STATE_SIZE``, a jitted ``decide``; see
:mod:`mm_core.strategy.base`), found by name in :mod:`mm_core.strategy.registry`. Each decision runs
:mod:`mm_core.strategy.pipeline`: regimes (latency, volatility, market status; with hysteresis)
-> risk (hard limits, trading state, kill switches) -> the strategy -> risk clamp -> requote rules
(:mod:`mm_core.strategy.requote`: deadband, order age, amend vs cancel+new, Kraken's rate counter).
Nothing here knows which venue it runs on.
"""

from mm_core.strategy.base import StrategySpec
from mm_core.strategy.registry import (StrategyNotFound, available_strategies, load_strategy, register,
                                       unregister)

__all__ = ["StrategySpec", "StrategyNotFound", "available_strategies", "load_strategy", "register", "unregister"]
