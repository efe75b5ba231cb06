"""What the package records of each send: the send log's rows and their content."""
