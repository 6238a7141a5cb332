"""Tests of the package as a whole: its layers, and the frozen bundle."""
