"""The cost-limit check at submit: Block refuses a submission once the period's spend has reached the
limit, Warn lets it through with a warning. It fails closed: if the check itself cannot run, a Block
limit refuses and says why. (Estimates and reservations build on this gate.)"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.budget import limit_status, spend_by_period
from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.billing import spend_entries
from simpletuner_cloud.services.provider_settings import ReplicateSettings

log = logging.getLogger(__name__)


async def check_cost_limit(
    session: AsyncSession,
    replicate: ReplicateSettings,
    catalogue: HardwareCatalogue,
    now: datetime | None = None,
) -> str | None:
    """None, or the warning to show (Warn); raises `cost_limit_exceeded` (Block)."""
    limit = replicate.cost_limit.domain()
    if not limit.active:
        return None
    now = now or datetime.now(UTC)
    try:
        totals = spend_by_period(await spend_entries(session, catalogue, now), now)
        status = limit_status(totals[limit.period], limit, now)
    except Exception as exc:
        if limit.action != "block":
            log.warning("cost limit check failed; Warn lets the job through", exc_info=True)
            return "The cost limit could not be checked; this job was not counted against it."
        raise CloudError(
            "The cost limit could not be checked, so this submission is refused (Block fails closed).",
            code="cost_limit_unavailable",
            hint="Retry in a moment; if it persists, check the server log or switch the limit to Warn.",
            details={"reason": type(exc).__name__},
        ) from None
    amount = f"${limit.amount:.2f}" if limit.amount is not None else "the limit"
    spent = f"${status.spent:.2f}"
    if status.state == "exceeded":
        message = f"This {limit.period} period's spend ({spent}) has reached the cost limit of {amount}."
        if limit.action == "block":
            raise CloudError(
                message,
                code="cost_limit_exceeded",
                hint=f"Wait for the period to reset ({status.resets_at:%Y-%m-%d %H:%M} UTC), raise the "
                "limit in Cloud -> Settings, or switch it to Warn.",
                details={"spent": str(status.spent), "limit": str(limit.amount), "period": limit.period},
            )
        return message + " (Warn: submitted anyway.)"
    if status.state == "warn":
        return f"This {limit.period} period's spend ({spent}) is near the cost limit of {amount}."
    return None
