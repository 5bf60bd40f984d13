"""Trading: the venue seam, canonical order/fill records, the order manager and reconciliation.

Import what you need from the modules (``records``, ``venue``, ``orders``, ``reconcile``,
``supervisor``, ``journal``, ``tables``); this package file stays empty so that venue adapters can
import :mod:`mm_core.trading.records` without pulling in the rest.
"""
