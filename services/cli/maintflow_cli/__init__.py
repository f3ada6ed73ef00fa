"""The `maintflow` command."""
