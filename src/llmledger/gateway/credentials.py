"""Provider keys per organization, encrypted at rest with a key derived from the secret."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from llmledger.kit.errors import ApiError, FieldError
from llmledger.kit.settings import Settings
from llmledger.models import ProviderCredential

# Providers that speak OpenAI's wire format, with their public base URLs (what comes before
# /chat/completions). The names are the price catalog's, so their calls are priced.
OPENAI_COMPATIBLE = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "x-ai": "https://api.x.ai/v1",
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "google": "https://generativelanguage.googleapis.com/v1beta/openai",
    "perplexity": "https://api.perplexity.ai",
    "cerebras": "https://api.cerebras.ai/v1",
    "moonshotai": "https://api.moonshot.ai/v1",
}
PROVIDERS = ("anthropic", *OPENAI_COMPATIBLE)
# Any other name is a provider of the organization's own (a self-hosted vLLM, a proxy) that
# speaks OpenAI's format at the base URL it is given.
_OWN_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,19}$")


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
    if not _OWN_PROVIDER.match(provider):
        raise FieldError("provider", "must be 1-20 lowercase letters, digits, '.', '_' or '-'")
    if provider not in PROVIDERS and base_url is None:
        raise FieldError(
            "base_url",
            f"is required for {provider!r}; llmledger knows the URLs of {', '.join(PROVIDERS)}",
        )
    api_key = api_key.strip()  # a key read from a file often ends in a newline
    if not api_key:
        raise FieldError("api_key", "must not be empty")
    if not api_key.isprintable():
        raise FieldError("api_key", "must not contain control characters")
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


def list_providers(session: Session, settings: Settings, org_id: int) -> list[tuple[str, str]]:
    """The organization's providers and the base URL each call goes to (never the keys)."""
    rows = session.execute(
        select(ProviderCredential.provider, ProviderCredential.base_url)
        .where(ProviderCredential.organization_id == org_id)
        .order_by(ProviderCredential.provider)
    )
    return [(name, base_url or default_base_url(settings, name)) for name, base_url in rows]


def remove_provider(session: Session, org_id: int, provider: str) -> None:
    row = session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.organization_id == org_id, ProviderCredential.provider == provider
        )
    )
    if row is None:
        raise FieldError("provider", f"no {provider} key is stored for this organization")
    session.delete(row)


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
    return Upstream(provider, api_key, (row.base_url or default_base_url(settings, provider)))


def default_base_url(settings: Settings, provider: str) -> str:
    if provider == "openai":
        return settings.openai_base_url.rstrip("/")
    if provider == "anthropic":
        return settings.anthropic_base_url.rstrip("/")
    return OPENAI_COMPATIBLE[provider]


def route(model: str, named: str | None) -> tuple[str, str]:
    """Which provider an OpenAI-format call goes to, and the model name to send it: the
    provider the x-llmledger-provider header names (the model as written: `openai/gpt-oss-120b`
    on a server of one's own is that server's), else a known provider's prefix
    (`deepseek/deepseek-chat`, `openrouter/anthropic/claude-sonnet-4`), else OpenAI."""
    if named and named.strip():
        return named.strip().lower(), model
    prefix, _, rest = model.partition("/")
    if rest and prefix in OPENAI_COMPATIBLE:
        return prefix, rest
    return "openai", model


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
