"""imgflow_contracts: what the services agree on (see shared/README.md)."""
