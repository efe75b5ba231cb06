"""SendFleet's HTTP API: the client, where its requests go, and what each answer means."""
