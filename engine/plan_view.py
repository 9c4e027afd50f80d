"""The plan as a finance reader sees it (`billing plan`), as text or JSON."""

from __future__ import annotations

from engine.plan import ACCOUNT_PHASES, SITE_PHASES, Plan, SitePlan, Step


def plan_json(plan: Plan, site: str | None = None) -> dict:
    terms = plan.terms
    return {
        "contract": terms.contract_id,
        "customer": terms.customer,
        "currency": terms.money.currency,
        "minor_unit": terms.money.places,
        "rounding": terms.money.rounding,
        "starts": terms.starts.isoformat(),
        "ends": terms.ends.isoformat() if terms.ends else None,
        "timezone": terms.timezone,
        "contract_version": terms.version,
        "phases": [p.value for p in SITE_PHASES],
        "contract_steps": [s.as_dict() for s in plan.steps],
        "sites": [
            {"site": s.site, "name": s.name, "steps": [step.as_dict() for step in s.steps]}
            for s in plan.sites
            if site is None or s.site == site
        ],
        **({} if plan.account is None else {
            "account_phases": [p.value for p in ACCOUNT_PHASES],
            "account": [step.as_dict() for step in plan.account],
        }),
    }


def _site_text(site: SitePlan) -> list[str]:
    return [f"site {site.site} \"{site.name}\""] + _phases_text(site.steps, SITE_PHASES)


def _phases_text(all_steps: tuple[Step, ...], phases) -> list[str]:
    out = []
    number = 0
    for phase in phases:
        steps = [s for s in all_steps if s.phase is phase]
        if not steps:
            continue
        out.append(f"  {phase.value}")
        for step in steps:
            number += 1
            where = f"  (line {step.source.line}, {step.source.block})" if step.source else ""
            out.append(f"    {number:>2}. {step.summary}{where}")
            out.append(f"        reads {', '.join(step.reads)}; writes {', '.join(step.writes)}")
    return out


def plan_text(plan: Plan, site: str | None = None) -> str:
    terms = plan.terms
    ends = terms.ends.isoformat() if terms.ends else "open-ended"
    out = [
        f"plan for contract \"{terms.contract_id}\" ({terms.customer})",
        f"  {terms.money.currency}, amounts rounded {terms.money.rounding} to {terms.money.places} places per line; "
        f"periods are calendar months in {terms.timezone}",
        f"  contract years from {terms.starts.isoformat()} (caps reset each anniversary); ends: {ends}",
        "  every site, every period, runs its steps in this order: " + " → ".join(p.value for p in SITE_PHASES),
        "",
        "contract",
    ]
    for step in plan.steps:
        out.append(f"  {step.phase.value}: {step.summary}")
    for site_plan in plan.sites:
        if site is None or site_plan.site == site:
            out.append("")
            out.extend(_site_text(site_plan))
    if plan.account is not None:
        out += ["", "account (once per period, after every site: " + " → ".join(p.value for p in ACCOUNT_PHASES) + ")"]
        out.extend(_phases_text(plan.account, ACCOUNT_PHASES))
    return "\n".join(out) + "\n"
