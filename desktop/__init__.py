"""PromptSpool's Qt desktop application over the worker core."""
