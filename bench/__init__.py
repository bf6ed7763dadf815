"""segstream benchmarks: ``python -m bench <name>``. Speed is measured here, never in tests."""
