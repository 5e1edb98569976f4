"""imgflow_contracts."""
