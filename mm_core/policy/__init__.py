"""Quoting policies: pure decision logic, the same object in backtest, paper and live trading.

A policy is two halves (see :mod:`mm_core.policy.base`): a Python object that states its
parameters (validated, printable, saved with results) and a jitted kernel that turns what the
strategy can see -- its fair mid, the best bid/ask it was last shown, its position -- into a
two-sided quote target. The backtest engine calls the kernel from inside its compiled loop; a live
venue calls the same kernel from Python. Nothing in a policy knows which venue it runs on.
"""

from mm_core.policy.base import Policy, QuoteTarget
from mm_core.policy.baseline import BaselinePolicy
from mm_core.policy.scripted import ScriptedQuotes

__all__ = ["Policy", "QuoteTarget", "BaselinePolicy", "ScriptedQuotes"]
