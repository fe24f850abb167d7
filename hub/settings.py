"""Hub settings from the environment (prefix HUB_), with an embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the hub reads from its environment; HUB_DATABASE_URL and so on."""

    model_config = SettingsConfigDict(env_prefix="HUB_")

    data_dir: Path = Path("hub-data")
    database_url: str = ""  # empty: SQLite file hub.db in data_dir
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_user: str = "hub"
    mqtt_password: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ingest_batch: int = 500  # messages per database transaction at most
    master_key: str = ""  # HQ's card master key in hex; empty: generated once into data_dir/master-key
    scheduler: bool = True  # `hub serve` runs the scheduled jobs (hub.scheduler); one hub process of a fleet should

    def db_url(self) -> str:
        """The database URL in force (the default SQLite file under data_dir)."""
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.db'}"
