"""One recipient's send, the path the web backend and the worker both take: retries, failures."""
