"""REST endpoint for cost previews."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from llmledger.estimates.calibration import Calibration, load_calibrations
from llmledger.estimates.schemas import (
    AlternativeOut,
    CalibrationOut,
    EstimateIn,
    EstimateOut,
)
from llmledger.estimates.service import Estimate, Prompt, estimate
from llmledger.kit.deps import PriceBookDep, PrincipalDep, SessionDep
from llmledger.kit.errors import FieldError
from llmledger.kit.schemas import CostOut
from llmledger.pricing.service import pricer_for

router = APIRouter(prefix="/estimates", tags=["estimates"])


def estimate_out(found: Estimate) -> EstimateOut:
    total_tokens = found.tokens.tokens + found.output_tokens
    return EstimateOut(
        provider=found.provider,
        model=found.model,
        input_tokens=found.tokens.tokens,
        output_tokens=found.output_tokens,
        tokens_exact=found.tokens.exact,
        tokenizer=found.tokens.encoding,
        expected_error=found.tokens.expected_error,
        context_window=found.context_window,
        fits_context=None if found.context_window is None else total_tokens <= found.context_window,
        cost=CostOut.of(found.cost),
        price_version=found.price_version,
        alternatives=[
            AlternativeOut(
                provider=a.provider,
                model=a.model,
                input_tokens=a.input_tokens,
                tokens_exact=a.tokens_exact,
                context_window=a.context_window,
                cost=CostOut.of(a.cost),
                saving=a.saving,
            )
            for a in found.alternatives
        ],
        calibration=None if found.calibration is None else calibration_out(found.calibration),
    )


def calibration_out(found: Calibration) -> CalibrationOut:
    return CalibrationOut(
        provider=found.provider,
        model=found.model,
        calls=found.calls,
        factor=round(found.factor, 4),
        spread=round(found.spread, 4),
        applied=found.trusted,
    )


@router.post("", response_model=EstimateOut)
def create_estimate(
    body: EstimateIn, session: SessionDep, principal: PrincipalDep, book: PriceBookDep
) -> EstimateOut:
    """Count a prompt's tokens and price it, with cheaper models whose context fits."""
    pricer = pricer_for(session, book, principal.organization_id)
    try:
        found = estimate(
            pricer,
            Prompt(body.text, body.messages, body.tools),
            body.model,
            provider=body.provider,
            max_output_tokens=body.max_output_tokens,
            at=body.at or datetime.now(UTC),
            alternatives=body.alternatives,
            calibrations=load_calibrations(session, principal.organization_id),
        )
    except ValueError as exc:  # message content of an unsupported shape
        raise FieldError("messages", str(exc)) from None
    return estimate_out(found)


@router.get("/accuracy", response_model=list[CalibrationOut])
def estimate_accuracy(session: SessionDep, principal: PrincipalDep) -> list[CalibrationOut]:
    """How our token estimates compared with what providers reported, per model, over this
    organization's gateway calls."""
    found = load_calibrations(session, principal.organization_id).values()
    return [calibration_out(c) for c in sorted(found, key=lambda c: (c.provider, c.model))]
