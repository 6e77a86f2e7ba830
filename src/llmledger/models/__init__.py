"""All ORM models, imported together so Alembic and the mappers see every table."""

from llmledger.models.accounts import ApiKey, Department, Organization, Team, User
from llmledger.models.base import Base
from llmledger.models.budgets import (
    Budget,
    BudgetAlert,
    BudgetAllocation,
    BudgetCounter,
    Delivery,
    Notification,
    Reservation,
    Webhook,
)
from llmledger.models.calibration import TokenCalibration
from llmledger.models.pricing import PriceVersion
from llmledger.models.providers import ProviderCredential
from llmledger.models.usage import UsageEvent

__all__ = [
    "ApiKey",
    "Base",
    "Budget",
    "BudgetAlert",
    "BudgetAllocation",
    "BudgetCounter",
    "Delivery",
    "Department",
    "Notification",
    "Organization",
    "PriceVersion",
    "ProviderCredential",
    "Reservation",
    "Team",
    "TokenCalibration",
    "UsageEvent",
    "User",
    "Webhook",
]
