"""imgflow_hasher."""
