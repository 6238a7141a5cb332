"""The fault, bad-input and security suites, against real processes."""
