"""imgflow_deduper."""
