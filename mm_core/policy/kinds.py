"""Kernel ids of the policies the engine can run (one constant per kernel)."""

BASELINE = 0
SCRIPTED = 1
