"""The model library: GGUF files already on disk, wherever other tools keep them, and the Hub."""
