"""The HTTP API: job endpoints with live SSE, OpenAI-compatible completions and the Batch API."""
