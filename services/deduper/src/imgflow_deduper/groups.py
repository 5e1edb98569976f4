"""The stored groups' upkeep now lives in ``imgflow_runtime.db.duplicate_groups``, so the
API regroups flagged groups too; this name stays for worker.py's import."""

from imgflow_runtime.db.duplicate_groups import regroup_dirty

__all__ = ["regroup_dirty"]
