"""Tools around the app: screenshots, icons (and, as shell scripts, set-up and the GPU run)."""
