"""Pure rules of the product: job states, hardware and cost math, budgets, progress parsing.

Nothing here does I/O; every module can be tested without a database, a network or a clock."""
