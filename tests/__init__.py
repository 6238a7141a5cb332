"""PromptSpool's test suite."""
