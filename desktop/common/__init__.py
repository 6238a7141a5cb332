"""Shared by every view: theme, icons, text formatting, small widgets, the sampling fields."""
