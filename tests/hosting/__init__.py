"""Tests of hosting the queue: the bundled server and worker children."""
