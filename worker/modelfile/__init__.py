"""GGUF model files: the checks made before a job is queued or loaded, and their metadata."""
