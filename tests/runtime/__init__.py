"""Tests of the worker's runtime: how a job attempt runs on the engine and what it reports."""
