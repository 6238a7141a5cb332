"""The `promptspool` command line: one module per group of commands, dispatched by
`worker.cli.main`; `worker.cli.commandclient` hands short ones to a warm command server."""
