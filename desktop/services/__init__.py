"""What the window stands on without being widgets: queue clients and readers, processes, state."""
