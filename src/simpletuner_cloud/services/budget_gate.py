"""The cost limit at submit, with a reservation: the new job's high estimate is counted against the
period together with what is spent, running and already reserved, in one guarded write (the check and
the job's insert share a transaction under a lock: PostgreSQL's advisory lock, SQLite's write lock),
so twenty simultaneous submissions can never push the total over a Block limit. Warn lets the job
through with a warning. It fails closed: a check that cannot run refuses under Block."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.costs import current_spend, limit_usd, usd_beside
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.store.database import transaction_lock

log = logging.getLogger(__name__)
BUDGET_LOCK = "simpletuner_cloud.budget"


@dataclass(frozen=True)
class BudgetDecision:
    warning: str | None


async def take_budget_lock(session: AsyncSession) -> None:
    """The first statement of the transaction that checks and inserts. Callers must not have read in
    this transaction before (SQLite would refuse to upgrade a stale read snapshot)."""
    await transaction_lock(session, BUDGET_LOCK)


async def check_budget(
    session: AsyncSession,
    replicate: ReplicateSettings,
    catalogue: HardwareCatalogue,
    reserve: Decimal,
    now: datetime,
) -> BudgetDecision:
    """Under `take_budget_lock`: None, or the warning to show (Warn); raises `cost_limit_exceeded`
    (Block) when spent + running + reserved + `reserve` would pass the limit."""
    limit = replicate.cost_limit.domain()
    if not limit.active or limit.amount is None:
        return BudgetDecision(None)
    try:
        spend = await current_spend(session, catalogue, replicate, now)
    except Exception as exc:
        if limit.action != "block":
            log.warning("cost limit check failed; Warn lets the job through", exc_info=True)
            return BudgetDecision("The cost limit could not be checked; this job was not counted against it.")
        raise CloudError(
            "The cost limit could not be checked, so this submission is refused (Block fails closed).",
            code="cost_limit_unavailable",
            hint="Retry in a moment; if it persists, check the server log or switch the limit to Warn.",
            details={"reason": type(exc).__name__},
        ) from None
    spent = spend.committed + spend.running
    after = spend.total + reserve
    figures = (
        f"spent {usd_beside(spent, limit)}, reserved by other jobs {usd_beside(spend.reserved, limit)}, "
        f"this job's estimate up to {usd_beside(reserve, limit)}, {limit.period} limit {limit_usd(limit)}"
    )
    details = {
        "spent": str(spent),
        "reserved": str(spend.reserved),
        "estimate": str(reserve),
        "limit": str(limit.amount),
        "period": limit.period,
        "resets_at": spend.end.isoformat(),
    }
    if after > limit.amount:
        if limit.action == "block":
            raise CloudError(
                f"This job does not fit under the cost limit: {figures}.",
                code="cost_limit_exceeded",
                hint=f"Wait for the period to reset ({spend.end:%Y-%m-%d %H:%M} UTC), lower max_train_steps, "
                "raise the limit (simpletuner cloud cost limit set ...), or switch it to Warn.",
                details=details,
            )
        return BudgetDecision(f"Over the cost limit: {figures} (Warn: submitted anyway).")
    if after >= limit.amount * limit.warn_ratio:
        return BudgetDecision(f"Close to the cost limit: {figures}.")
    return BudgetDecision(None)
