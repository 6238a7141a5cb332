"""Tests of the llama.cpp engine: batching, sampling, text assembly."""
