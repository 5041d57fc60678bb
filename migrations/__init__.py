"""Alembic migrations for the lensbatch schema (see lensbatch/db.py for how they run)."""
