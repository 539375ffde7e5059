"""Use cases: the only layer that combines the store, the provider and policy."""
