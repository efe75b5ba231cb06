"""Secrets held so that nothing shows them: the API key, webhook secrets, redaction."""
