"""Job specs and records, prompt files, validation messages and export: what a job is."""
