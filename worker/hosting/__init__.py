"""Running the queue: the bundled server, `serve`, the TLS door, the self-test, worker children."""
