"""Forgetting a person: what is erased, and the digests that keep them suppressed."""
