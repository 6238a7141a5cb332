"""Tests of job specs and prompt files."""
