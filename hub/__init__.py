"""The hub: the authoritative ledger (FastAPI + SQLModel); arrives with the sync issue (#4)."""
