"""Alembic migrations of berth's schema; `berth.store.migrate` runs them."""
