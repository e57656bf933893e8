"""The collector's state store: SQLAlchemy models, the engine, and schema migrations (SQLite or PostgreSQL)."""
