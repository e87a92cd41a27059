"""Persistence: ORM models, the database session, and archived logs on disk."""
