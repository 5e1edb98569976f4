"""The `imgflow` command."""
