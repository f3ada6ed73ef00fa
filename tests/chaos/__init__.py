"""Chaos runs: the distributed services under injected faults, with the invariants checked from
the database afterwards. `harness.py` is the reusable part (CI test and by-hand runs)."""
