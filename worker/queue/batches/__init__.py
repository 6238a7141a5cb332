"""OpenAI batches kept in the queue: their files, records, queueing, settling and keeper."""
