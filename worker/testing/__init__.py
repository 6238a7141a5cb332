"""A real queue for tests, benchmarks and scripts (never imported by the app)."""
