"""A refusal (engine/refusal.py) as the portal says it: a sentence beside the field it concerns, with what to do here.

    if not beside_field(form, refused.refusal):      # "reason" → form.reason.errors, the text typed kept
        flash(not_done(refused.refusal), "error")    # "Not done: …", above the page

The layers below name the next step (`action`) and never word it for an interface;
the portal says it as someone using the portal does it. The command line words the
same actions as commands to run (billing/refusals.py). Templates have the filter
`refusal_text` (installed by admin_app/portal.py).
"""

from __future__ import annotations

from flask_wtf import FlaskForm

from engine.refusal import Refusal

# Each action a refusal may name, as what to do in the portal (from the refusal's params).
WORDS = {
    "close": "close the period again",
    "approve": "approve it first",
    "void": "void it to correct it",
    "credit": "issue a credit note for what remains instead",
    "reconcile": "open the reconciliation of {period}: resolve the discrepancies and close the period again, "
                 "or record why they may stand",
    "save-contract": "save its contract first (Contracts, New contract)",
    "omit-effective": "leave the period empty",
}


def sentence(text: str) -> str:
    """A message from the layers below (`period '13' is not …`) as a sentence: capital first, full stop last."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def refusal_text(refusal: Refusal) -> str:
    """The refusal as a sentence of its own (beside a field)."""
    return sentence(_said(refusal))


def not_done(refusal: Refusal) -> str:
    """The refusal of a step that has no field to sit beside, as a message above the page."""
    text = _said(refusal)
    return f"Not done: {text}" + ("" if text.endswith(".") else ".")


def _said(refusal: Refusal) -> str:
    if refusal.action is None:
        return refusal.message
    return f"{refusal.message}; {WORDS[refusal.action].format_map(refusal.params)}"


def beside_field(form: FlaskForm, refusal: Refusal) -> bool:
    """Puts the refusal beside its field when `form` has that field (the form keeps what was typed)."""
    if refusal.field is None or refusal.field not in form:
        return False
    field = form[refusal.field]
    field.errors = [*field.errors, refusal_text(refusal)]   # a tuple until the form was validated
    return True
