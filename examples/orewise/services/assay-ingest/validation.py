"""Validation of incoming assay results. No HTTP here: app.py maps errors to 400."""

import math
import re

# Sample ids appear in URLs (/assays/<sample_id>), so keep them URL-safe.
# Typical form: <drillhole>-<depth from>, e.g. "DH-001-12.5".
SAMPLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Ore type and method codes are lowercase labels ("oxide", "fire-assay").
# The authoritative lists live in the shared reference database (db/shared.sql):
# check_known_codes() checks against them when it is configured, and new codes
# need no redeploy here.
CODE_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

MAX_AU_GPT = 1000.0  # grams per tonne; anything above is a data-entry error
MAX_CU_PCT = 100.0

FIELDS = ("sample_id", "ore_type", "method", "au_gpt", "cu_pct")


class ValidationError(Exception):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def _code(body, field):
    value = body.get(field)
    if not isinstance(value, str) or not CODE_RE.match(value):
        raise ValidationError(field, f"{field} must be a lowercase code such as 'oxide' or 'fire-assay'")
    return value


def _number(body, field, upper, unit):
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, f"{field} must be a number ({unit})")
    if not 0 <= value <= upper:
        raise ValidationError(field, f"{field} must be between 0 and {upper:g} {unit}, got {value}")
    return float(value)


def is_code(value):
    return isinstance(value, str) and bool(CODE_RE.match(value))


def validate_assay(body):
    """Return a clean assay dict from a decoded JSON object, or raise ValidationError."""
    for field in body:
        if field not in FIELDS:
            raise ValidationError(field, f"unknown field {field!r}; expected {', '.join(FIELDS)}")
    for field in FIELDS:
        if field not in body:
            raise ValidationError(field, f"{field} is required")
    sample_id = body["sample_id"]
    if not isinstance(sample_id, str) or not SAMPLE_ID_RE.match(sample_id):
        raise ValidationError(
            "sample_id",
            "sample_id must be 1-64 characters of A-Z a-z 0-9 . _ - (e.g. 'DH-001-12.5')",
        )
    return {
        "sample_id": sample_id,
        "ore_type": _code(body, "ore_type"),
        "method": _code(body, "method"),
        "au_gpt": _number(body, "au_gpt", MAX_AU_GPT, "g/t"),
        "cu_pct": _number(body, "cu_pct", MAX_CU_PCT, "%"),
    }


def check_known_codes(record, known):
    """Raise ValidationError if record's ore_type/method is not in known[field] (a list of codes)."""
    for field in ("ore_type", "method"):
        codes = known.get(field) or []
        if record[field] not in codes:
            raise ValidationError(
                field, f"{field} {record[field]!r} is not a known code; known: {', '.join(codes) or 'none'}"
            )
