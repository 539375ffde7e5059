"""Reading SimpleTuner configs and turning their datasets into a safe, deterministic upload archive."""
