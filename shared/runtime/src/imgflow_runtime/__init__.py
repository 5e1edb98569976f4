"""imgflow_runtime: the code every imgflow service runs on (see shared/README.md)."""
