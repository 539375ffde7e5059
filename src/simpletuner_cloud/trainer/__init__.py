"""The contract with `simpletuner/advanced-trainer`: its inputs, and checking them against a version."""
