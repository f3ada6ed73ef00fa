"""maintflow's benchmark harness: `python -m bench.run [--quick] [--only 1,3]`. Every figure is a
ratio to a baseline measured in the same run, on the same machine (see docs/benchmarks.md)."""
