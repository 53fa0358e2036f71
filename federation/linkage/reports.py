"""A linkage's outcome as JSON (what `cityfed match --json` prints and the console serves) and, in
words, what each party learned from it."""

from __future__ import annotations

import json

from federation.linkage.asker import LinkageOutcome
from federation.linkage.plan import MODE_NAMES, mode_name


def outcome_to_json(outcome: LinkageOutcome) -> dict:
    plan, result = outcome.plan, outcome.result
    body = {
        "check": plan.check, "mode": mode_name(plan.mode), "linkage_id": plan.linkage_id.hex(),
        "owner": plan.owner.city, "partner": plan.partner.city, "complete": outcome.complete,
        "elapsed_seconds": round(outcome.elapsed_seconds, 3), "bytes_relayed": outcome.traffic,
        "cities": [{"city": o.city, "status": o.status.value, "code": o.code,
                    "detail": o.detail,
                    "receipt": json.loads(o.receipt.to_json()) if o.receipt else None}
                   for o in outcome.outcomes],
        "receipts": [{"city": r.city, "step": r.step,
                      "receipt": json.loads(r.receipt.to_json()) if r.receipt else None}
                     for r in outcome.receipts],
    }
    if result is not None:
        body.update(count=result.count, exact=result.exact,
                    count_half_width_95=result.count_half_width_95,
                    matched_keys=list(result.matched_keys),
                    owner_points=result.owner_points, owner_padded=result.owner_padded,
                    partner_points=result.partner_points, partner_padded=result.partner_padded)
    return body


def what_each_learned(outcome: LinkageOutcome, asker: str) -> list[str]:
    plan, result = outcome.plan, outcome.result
    owner, partner = plan.owner.city, plan.partner.city

    def size(points: int, padded: bool) -> str:
        return f"{points} points" + (" (padded with a private number of dummies)" if padded
                                     else " (its exact size)")

    revealed = ("which of its own records matched" if result.matched_keys or
                plan.mode == MODE_NAMES["reveal-to-owner"] else "the count, as released")
    lines = [
        f"{partner} learned the size of {owner}'s set: "
        f"{size(result.owner_points, result.owner_padded)}; nothing about which matched",
        f"{owner} learned the size of {partner}'s set: "
        f"{size(result.partner_points, result.partner_padded)}, and {revealed}",
    ]
    if asker not in (owner, partner):
        lines.append(f"{asker} (the asker) relayed blinded points it cannot read, and learned "
                     "the released result and both padded sizes")
    return lines
