"""Alembic migrations of the hub's schema; `hub db upgrade` (and every hub start) applies them."""
