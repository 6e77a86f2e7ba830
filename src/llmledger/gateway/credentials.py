"""Provider keys per organization, encrypted at rest with a key derived from the secret."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from llmledger.kit.errors import ApiError, FieldError
from llmledger.kit.settings import Settings
from llmledger.models import ProviderCredential

PROVIDERS = ("openai", "anthropic")


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(f"llmledger-provider-keys:{secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@dataclass(frozen=True)
class Upstream:
    provider: str
    api_key: str
    base_url: str


def set_provider(
    session: Session,
    settings: Settings,
    org_id: int,
    provider: str,
    api_key: str,
    base_url: str | None = None,
) -> ProviderCredential:
    if provider not in PROVIDERS:
        raise FieldError("provider", f"must be one of {', '.join(PROVIDERS)}")
    if not api_key.strip():
        raise FieldError("api_key", "must not be empty")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise FieldError("base_url", "must be an http(s) URL")
    row = session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.organization_id == org_id, ProviderCredential.provider == provider
        )
    )
    if row is None:
        row = ProviderCredential(organization_id=org_id, provider=provider)
        session.add(row)
    row.api_key_encrypted = _fernet(settings.secret_key).encrypt(api_key.encode()).decode()
    row.base_url = base_url.rstrip("/") if base_url else None
    session.flush()
    return row


def upstream_for(session: Session, settings: Settings, org_id: int, provider: str) -> Upstream:
    row = session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.organization_id == org_id, ProviderCredential.provider == provider
        )
    )
    if row is None:
        raise ApiError(
            400,
            "provider_not_configured",
            f"no {provider} key for this organization: "
            f"llmledger providers set --org NAME {provider} --api-key KEY",
        )
    try:
        api_key = _fernet(settings.secret_key).decrypt(row.api_key_encrypted.encode()).decode()
    except InvalidToken:
        raise ApiError(
            500,
            "provider_key_unreadable",
            "the stored provider key was encrypted with another secret",
        ) from None
    default = settings.openai_base_url if provider == "openai" else settings.anthropic_base_url
    return Upstream(provider, api_key, (row.base_url or default).rstrip("/"))


def configured_providers(sessions: sessionmaker[Session], secret: str) -> set[str] | None:
    """Providers the key's organization has keys for; None for an unknown key."""
    from llmledger.accounts.service import authenticate
    from llmledger.kit.db import unit_of_work

    with unit_of_work(sessions) as session:
        principal = authenticate(session, secret)
        if principal is None:
            return None
        rows = session.scalars(
            select(ProviderCredential.provider).where(
                ProviderCredential.organization_id == principal.organization_id
            )
        )
        return set(rows)
