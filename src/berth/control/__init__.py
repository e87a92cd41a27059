"""Controllers: the loops that converge the engine to the desired state in the store."""
