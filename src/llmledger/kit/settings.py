"""One typed settings class; every option is an `LLMLEDGER_*` environment variable."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "development-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMLEDGER_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./llmledger.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: str = DEV_SECRET

    # Budget counters: "sql" (the database; correct under concurrency on PostgreSQL and
    # SQLite) or "redis" (many processes, high rates).
    budget_backend: Literal["sql", "redis"] = "sql"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "llmledger"
    # With Redis unreachable: refuse calls (503) or fall back to the database's counters.
    redis_unavailable: Literal["fail_closed", "database"] = "fail_closed"
    # Calls to models without a price: let them through uncounted, or block them.
    unpriced_models: Literal["allow", "block"] = "allow"
    # A reservation never settled or released is given back after this long.
    reservation_ttl_seconds: int = Field(default=900, ge=10)

    # Background work (alerts delivery, retries, expiry of reservations) runs in the server
    # process unless a separate `llmledger worker` is run and this is set to false.
    worker_in_process: bool = True
    worker_interval_seconds: float = Field(default=2.0, gt=0)

    # The gateway's upstreams, unless an organization set its own base URL.
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_base_url: str = "https://api.anthropic.com"
    # Output tokens held for a call that names no maximum (OpenAI's max_tokens is optional).
    default_max_output_tokens: int = Field(default=4096, ge=1)
    upstream_timeout_seconds: float = Field(default=600.0, gt=0)
    # Where the gateway keeps calls the database could not take (an outage) until it can.
    spool_dir: str = "./llmledger-spool"

    # Email alerts over SMTP.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "llmledger@localhost"
    # Webhook deliveries: tries before giving up, and the first backoff (doubling each time).
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_backoff_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("LLMLEDGER_SECRET_KEY must be set to a real secret in production")
        return self


@cache
def get_settings() -> Settings:
    return Settings()
