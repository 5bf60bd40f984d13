"""mm_core: a crypto market-making framework, from verified data capture to quoting.

Data flows one way: adapters -> capture/storage -> quality/latency -> research -> backtest <-> policy
-> trading (see docs in README.md and ../shared/DESIGN.md).
"""

__version__ = "0.1.0"
