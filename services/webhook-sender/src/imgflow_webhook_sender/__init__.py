"""imgflow's webhook sender: its own deployable, so no receiver can slow the upload API."""
