"""Database writes the records need: one-statement inserts, durable writes, SQLite's lock."""
