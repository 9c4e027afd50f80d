"""Loading contract versions from files: `FILE` and `FILE@YYYY-MM` (interfaces §2).

A version with `@YYYY-MM` is in effect from that period on; the one without is
in effect from the contract's start. All versions must be the same contract
with the same `starts`, `timezone` and currency (caps count money across them),
and a version may change the account's `commit` only from a contract year's start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsl.compile import Compiled, compile_file
from engine.account import commitment_refused_until, describe_commitment
from engine.evaluate import Timeline
from engine.periods import Period

_AT_PERIOD = re.compile(r"^(.*)@(\d{4}-\d{2})$")


class UsageError(Exception):
    """The command was used wrongly or a file could not be read (exit 2)."""


class InputError(Exception):
    """The input was understood but is wrong (exit 1)."""


@dataclass(frozen=True)
class VersionSpec:
    path: str
    effective: Period | None


def parse_version_spec(text: str) -> VersionSpec:
    match = _AT_PERIOD.match(text)
    if not match:
        return VersionSpec(text, None)
    try:
        return VersionSpec(match.group(1), Period.parse(match.group(2)))
    except ValueError as exc:
        raise UsageError(f"--contract {text}: {exc}") from None


def compile_versions(specs: list[VersionSpec]) -> list[tuple[VersionSpec, Compiled]]:
    compiled = []
    for spec in specs:
        try:
            compiled.append((spec, compile_file(spec.path)))
        except OSError as exc:
            raise UsageError(f"{spec.path}: cannot read the contract: {exc.strerror or exc}") from None
    return compiled


def build_timeline(compiled: list[tuple[VersionSpec, Compiled]]) -> Timeline:
    """Raises InputError when the versions do not make one contract."""
    bases = [c for spec, c in compiled if spec.effective is None]
    if len(bases) != 1:
        raise UsageError(
            "give exactly one --contract without @YYYY-MM (the version in effect from the contract's start); "
            f"got {len(bases)}"
        )
    base = bases[0].plan.terms
    versions, seen = [], {}
    for spec, result in compiled:
        terms = result.plan.terms
        effective = spec.effective or Period.of(base.starts)
        changed = [("contract id", base.contract_id, terms.contract_id)] if terms.contract_id != base.contract_id \
            else terms.changed_from(base.kept())
        if changed:
            what, theirs, mine = changed[0]
            raise InputError(f"{spec.path}: a new version must keep the contract's {what} "
                             f"({theirs} in {bases[0].filename}, {mine} here)")
        if spec.effective is not None and spec.effective <= Period.of(base.starts):
            raise InputError(
                f"{spec.path}@{spec.effective}: an amendment takes effect after the contract's first period "
                f"({Period.of(base.starts)}); to change the start, edit the contract itself"
            )
        if effective in seen:
            raise InputError(f"{spec.path}: two versions take effect in {effective} ({seen[effective]} and {spec.path})")
        seen[effective] = spec.path
        versions.append((effective, result.plan))
    _check_commitments(sorted(zip(versions, (spec.path for spec, _ in compiled)), key=lambda v: v[0][0]), base.starts)
    return Timeline(tuple(versions))


def _check_commitments(ordered: list, starts) -> None:
    """Raises InputError for a version that changes the `commit` other than at a contract year's start."""
    for ((_, before), _), ((effective, plan), path) in zip(ordered, ordered[1:]):
        earliest = commitment_refused_until(starts, before, plan, effective)
        if earliest is not None:
            raise InputError(
                f"{path}@{effective}: this version changes the account's commit ({describe_commitment(before)} "
                f"before, {describe_commitment(plan)} here), which can change only at the start of a contract "
                f"year; it could take effect from {earliest}"
            )
