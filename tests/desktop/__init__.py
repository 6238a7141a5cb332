"""Tests of the desktop app, offscreen, over a real queue."""
