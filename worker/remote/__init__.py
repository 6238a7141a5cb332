"""Jobs on remote OpenAI-compatible endpoints: streaming, shared limits and polite retries."""
