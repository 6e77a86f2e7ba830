"""The parts of a gateway call that touch the database, run in a worker thread: before
(authenticate, price, hold) and after (queue the usage and settlement, or release)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from llmledger.accounts.service import Principal, authenticate
from llmledger.budgets.counters import Held
from llmledger.budgets.enforcement import Call, Decision, Enforcer
from llmledger.budgets.lines import Attribution as Owner
from llmledger.budgets.lines import BudgetRules
from llmledger.budgets.rules import find_attribution, load_rules, rules_version
from llmledger.core.money import from_nanos, to_nanos
from llmledger.core.pricing import TokenUsage, compute_cost
from llmledger.estimates.calibration import (
    Calibration,
    ModelKey,
    corrected,
    load_calibrations,
)
from llmledger.gateway.credentials import Upstream, upstream_for
from llmledger.gateway.recorder import Recorder
from llmledger.gateway.spool import Finished
from llmledger.kit.db import unit_of_work
from llmledger.kit.group_commit import GroupCommit
from llmledger.kit.settings import Settings
from llmledger.kit.ttl_cache import TtlCache
from llmledger.pricing.book import OrgPrices, PriceBook, PriceQuote
from llmledger.pricing.repository import load_org_prices
from llmledger.pricing.service import Pricer
from llmledger.usage.schemas import UsageIn

log = logging.getLogger("llmledger.gateway")


@dataclass(frozen=True)
class Attribution:
    """Who the call is for, from the optional x-llmledger-* headers."""

    user: str | None = None
    team: str | None = None
    department: str | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    tags: dict[str, str] | None = None


@dataclass
class Admitted:
    """A call allowed through: its hold, and what is needed to record it afterwards."""

    principal: Principal
    provider: str
    model: str
    input_tokens: int  # our count (corrected by calibration), used if the provider reports none
    upstream: Upstream
    decision: Decision
    who: Attribution
    quote: PriceQuote | None
    estimated_input_tokens: int  # our count before any correction
    # The call's id in the ledger (its client_request_id), also told to the caller.
    request_id: str = field(default_factory=lambda: f"gw_{uuid.uuid4().hex}")

    @property
    def held(self) -> Held | None:
        return self.decision.held


class Refused(Exception):
    """The call may not run: a budget blocks it (or the caller is not known)."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Gateway:
    """What the gateway keeps between calls: caches of the hot look-ups (each a few seconds
    old at most) and the background recorder."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        book: PriceBook,
        enforcer: Enforcer,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.book = book
        self.enforcer = enforcer
        self.settings = settings
        # A revoked key or a changed provider key takes effect within these TTLs.
        self._principals: TtlCache[str, Principal | None] = TtlCache(30)
        self._upstreams: TtlCache[tuple[int, str], Upstream] = TtlCache(30)
        self._prices: TtlCache[int, OrgPrices] = TtlCache(10)
        self._rules: TtlCache[tuple[int, int], BudgetRules] = TtlCache(5)
        self._who: TtlCache[tuple[int, int, str | None, str | None, str | None], Owner] = TtlCache(
            30
        )
        # What providers reported against our estimates, per organization and model.
        self._calibrations: TtlCache[int, dict[ModelKey, Calibration]] = TtlCache(60)
        self.recorder = Recorder(sessions, book, enforcer, Path(settings.spool_dir))
        # Calls admitted in worker threads at the same moment share one hold transaction.
        self._holds: GroupCommit[Call, Decision | Exception] = GroupCommit(self._hold_batch)
        # How admissions went, for tests and operators: on the event loop, or in a thread.
        self.admissions = {"fast": 0, "thread": 0}

    def close(self) -> None:
        self.recorder.close()

    def admit(
        self,
        secret: str,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        who: Attribution,
    ) -> Admitted:
        """Authenticate, price the worst case, check every budget and hold it; commit the hold."""
        self.admissions["thread"] += 1
        with unit_of_work(self.sessions) as session:
            principal, upstream = self._caller(session, secret, provider)
            org_id = principal.organization_id
            now = datetime.now(UTC)
            prices = self._prices.get(org_id, lambda: load_org_prices(session, org_id))
            quote = Pricer(self.book, prices).quote(model, provider, now)
            calibrations = self._calibrations.get(
                org_id, lambda: load_calibrations(session, org_id)
            )
            named = (quote.provider, quote.model) if quote else (provider, model)
            estimate = input_tokens
            input_tokens = corrected(estimate, *named, calibrations)
            owner = self._who.get(
                (org_id, principal.api_key_id, who.user, who.team, who.department),
                lambda: find_attribution(
                    session, org_id, principal.api_key_id, who.user, who.team, who.department
                ),
                lambda found: _complete(found, who),
            )
            rules = self._rules.get(
                (org_id, rules_version(org_id)), lambda: load_rules(session, org_id)
            )
            amount = 0
            if quote is not None:
                cost = compute_cost(TokenUsage(input_tokens, max_output_tokens), quote.sheet)
                amount = to_nanos(cost.total, round_up=True)
            elif self.settings.unpriced_models == "block":
                raise Refused(
                    403,
                    f"model {model!r} has no price and unpriced models are blocked",
                    "unpriced_model",
                )
            call = Call(
                rules, owner, principal.time_zone, amount, input_tokens + max_output_tokens, now
            )
            if quote is None:
                decision = self.enforcer.check(session, call)
        if quote is not None:
            decision = self._hold(call)
        if decision.blocked:
            raise Refused(429, "; ".join(decision.reasons) or "budget exceeded", "budget_exceeded")
        return Admitted(
            principal, provider, model, input_tokens, upstream, decision, who, quote, estimate
        )

    def _hold(self, call: Call) -> Decision:
        if self.enforcer.store.name != "sql":
            # Redis holds are not undone by a rollback, so they are not batched here (the
            # Redis store groups concurrent holds into one script call by itself).
            with unit_of_work(self.sessions) as session:
                return self.enforcer.reserve(session, call)
        found = self._holds.submit(call)
        if isinstance(found, Exception):
            raise found
        return found

    def _hold_batch(self, calls: Sequence[Call]) -> list[Decision | Exception]:
        """Holds on SQL counters for calls admitted at the same moment, in one transaction:
        one commit (and one turn at the hot counter rows) for all of them. Each caller gets
        its own decision, or its own error."""
        try:
            with unit_of_work(self.sessions) as session:
                return [self.enforcer.reserve(session, call) for call in calls]
        except Exception as exc:
            if len(calls) == 1:
                return [exc]
            # E.g. a deadlock with another process's batch: nothing of it was kept, so each
            # call is held again alone.
            log.warning("a batch of %d holds failed (%s); holding them one by one", len(calls), exc)
            return [self._hold_batch([call])[0] for call in calls]

    def _caller(self, session: Session, secret: str, provider: str) -> tuple[Principal, Upstream]:
        """Who is calling, and where their calls to `provider` go."""
        key = hashlib.sha256(secret.encode()).hexdigest()
        principal = self._principals.get(
            key, lambda: authenticate(session, secret), lambda p: p is not None
        )
        if principal is None:
            raise Refused(401, "unknown or revoked llmledger API key", "invalid_api_key")
        org_id = principal.organization_id
        upstream = self._upstreams.get(
            (org_id, provider), lambda: upstream_for(session, self.settings, org_id, provider)
        )
        return principal, upstream

    def upstream(self, secret: str, provider: str) -> Upstream:
        """The caller's upstream, for calls the provider does not charge (token counting)."""
        with unit_of_work(self.sessions) as session:
            return self._caller(session, secret, provider)[1]

    async def admit_fast(
        self,
        secret: str,
        provider: str,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        who: Attribution,
    ) -> Admitted | None:
        """`admit` on the event loop, with no thread hop and no database: when everything it
        needs is cached and the budget store can hold by itself (Redis). None otherwise, and
        the caller takes `admit`, which also fills the caches."""
        principal = self._principals.peek(hashlib.sha256(secret.encode()).hexdigest())
        if principal is None:
            return None
        org_id = principal.organization_id
        upstream = self._upstreams.peek((org_id, provider))
        prices = self._prices.peek(org_id)
        owner = self._who.peek((org_id, principal.api_key_id, who.user, who.team, who.department))
        rules = self._rules.peek((org_id, rules_version(org_id)))
        calibrations = self._calibrations.peek(org_id)
        if upstream is None or prices is None or owner is None or rules is None:
            return None
        if calibrations is None:
            return None
        now = datetime.now(UTC)
        quote = Pricer(self.book, prices).quote(model, provider, now)
        if quote is None:
            return None  # unpriced: the thread path decides
        estimate = input_tokens
        input_tokens = corrected(estimate, quote.provider, quote.model, calibrations)
        cost = compute_cost(TokenUsage(input_tokens, max_output_tokens), quote.sheet)
        call = Call(
            rules,
            owner,
            principal.time_zone,
            to_nanos(cost.total, round_up=True),
            input_tokens + max_output_tokens,
            now,
        )
        decision = await self.enforcer.reserve_fast(call)
        if decision is None:
            return None
        self.admissions["fast"] += 1
        if decision.blocked:
            raise Refused(429, "; ".join(decision.reasons) or "budget exceeded", "budget_exceeded")
        return Admitted(
            principal, provider, model, input_tokens, upstream, decision, who, quote, estimate
        )

    def finished(
        self,
        admitted: Admitted,
        usage: TokenUsage,
        latency_ms: int,
        status: str = "success",
        reported: bool = True,
    ) -> Finished:
        """The call as the recorder takes it; with the provider's own usage (`reported`), our
        estimate goes along, to be checked against it."""
        who = admitted.who
        event = UsageIn(
            model=admitted.model,
            provider=admitted.provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            user=who.user,
            team=who.team,
            department=who.department,
            prompt_id=who.prompt_id,
            prompt_version=who.prompt_version,
            tags=who.tags,
            latency_ms=latency_ms,
            status=status,
            source="gateway",
            occurred_at=datetime.now(UTC),
            client_request_id=admitted.request_id,
        )
        estimate = admitted.estimated_input_tokens if reported else None
        return Finished(admitted.principal, event, admitted.held, estimate)

    def finish(
        self,
        admitted: Admitted,
        usage: TokenUsage,
        latency_ms: int,
        status: str = "success",
        reported: bool = True,
    ) -> Decimal | None:
        """Queue the call's usage and settlement for the recorder; returns its cost."""
        self.recorder.submit(self.finished(admitted, usage, latency_ms, status, reported))
        if admitted.quote is None:
            return None
        return compute_cost(usage, admitted.quote.sheet).total

    def release(self, admitted: Admitted) -> None:
        if admitted.held is None:
            return
        try:
            with unit_of_work(self.sessions) as session:
                self.enforcer.release(session, admitted.held)
        except Exception:
            # The caller still gets the upstream's answer; the hold expires on its own.
            log.exception(
                "a hold could not be given back; it expires at %s", admitted.held.expires_at
            )


def _complete(found: Owner, who: Attribution) -> bool:
    """Cache an attribution only once every name it was given exists (a first-time user is
    created when its usage is recorded, and must be seen on its next call)."""
    return not (
        (who.user and found.user_id is None)
        or (who.team and found.team_id is None)
        or (who.department and found.department_id is None)
    )


def remaining_after(admitted: Admitted, cost: Decimal | None) -> Decimal | None:
    """The smallest remaining amount over the call's budget lines, after this call."""
    if not admitted.decision.lines:
        return None
    hold = admitted.held.amount if admitted.held else 0
    actual = cost or Decimal(0)
    return min(
        from_nanos(r.line.limit_nanos - r.spent - r.reserved + hold) - actual
        for r in admitted.decision.lines
    )
