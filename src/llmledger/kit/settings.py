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
    # Batches above this size are refused so one request cannot hold a transaction for long.
    max_batch_size: int = 1000

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("LLMLEDGER_SECRET_KEY must be set to a real secret in production")
        return self


@cache
def get_settings() -> Settings:
    return Settings()
