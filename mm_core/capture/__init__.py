"""Live capture: the collector, its writers and the layout of a run directory."""
