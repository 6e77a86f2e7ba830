"""Alembic migrations, shipped inside the package so `llmledger db upgrade` works anywhere."""
