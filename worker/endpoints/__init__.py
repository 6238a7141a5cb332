"""Remote OpenAI-compatible endpoints: their settings and their keys."""
