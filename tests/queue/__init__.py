"""Tests of the queue: submit, states, priorities, parallel workers."""
