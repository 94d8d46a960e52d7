"""Model identifiers in every form Bedrock logs them, reduced to one comparable form.

A record's ``modelId`` echoes whatever the caller passed: a base model ID
(``anthropic.claude-3-5-haiku-20241022-v1:0``), a cross-Region inference-profile ID
(``us.`` / ``eu.`` / ``apac.`` / ``global.`` ... prefix), either's ARN, or a model ID with a
context-length suffix (``amazon.nova-lite-v1:0:300k``, as distillation students are named).
``normalize_model_id`` maps all of them to the base model ID; application-inference-profile,
provisioned and custom-model ARNs carry no model name and are returned unchanged.
"""

from __future__ import annotations

import re

#: Geographic prefixes of system-defined cross-Region inference profiles.
PROFILE_PREFIXES: tuple[str, ...] = ("us", "us-gov", "eu", "apac", "ca", "jp", "au", "global")

_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:[0-9]*:(?:foundation-model|inference-profile)/(?P<id>.+)$")
_PROFILE = re.compile(r"^(?:" + "|".join(re.escape(p) for p in PROFILE_PREFIXES) + r")\.(?=[a-z0-9-]+\.)")
_CONTEXT_SUFFIX = re.compile(r":[0-9]+k$")

# The same steps as DuckDB SQL (regexp_replace with POSIX-like RE2 syntax).
_SQL_ARN = r"^arn:aws[a-z-]*:bedrock:[^:]*:[0-9]*:(foundation-model|inference-profile)/"
_SQL_PROFILE = r"^(" + "|".join(re.escape(p) for p in PROFILE_PREFIXES) + r")\.([a-z0-9-]+\.)"
_SQL_SUFFIX = r":[0-9]+k$"

#: Provider prefix of a base model ID -> family name used by the converters and validators.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("anthropic.", "anthropic"),
    ("meta.", "meta"),
    ("amazon.nova", "amazon-nova"),
    ("amazon.titan", "amazon-titan"),
    ("mistral.", "mistral"),
    ("cohere.", "cohere"),
    ("ai21.", "ai21"),
    ("deepseek.", "deepseek"),
    ("openai.", "openai"),
    ("qwen.", "qwen"),
    ("writer.", "writer"),
)


def normalize_model_id(model_id: str) -> str:
    """The base model ID behind any form of ``model_id`` (ARN, profile ID, ``:NNNk`` suffix)."""
    value = model_id.strip()
    arn = _ARN.match(value)
    if arn:
        value = arn.group("id")
    value = _PROFILE.sub("", value, count=1)
    return _CONTEXT_SUFFIX.sub("", value)


def model_matches(model_id: str | None, wanted: str) -> bool:
    """True when ``model_id`` (as logged) names the same model as ``wanted`` (any form)."""
    if not model_id:
        return False
    return normalize_model_id(model_id) == normalize_model_id(wanted)


def model_family(model_id: str | None) -> str:
    """The provider family of a model ID in any form, or ``"unknown"``."""
    if not model_id:
        return "unknown"
    base = normalize_model_id(model_id)
    for prefix, family in _FAMILIES:
        if base.startswith(prefix):
            return family
    return "unknown"


def sql_normalized_model_id(column: str) -> str:
    """A DuckDB SQL expression computing ``normalize_model_id`` of ``column``.

    ``column`` must be a trusted SQL expression (a column name chosen by logtap, never user
    input); the patterns are constants. Compare its result with a bound parameter holding
    ``normalize_model_id(user_value)``.
    """
    arn = f"regexp_replace({column}, '{_SQL_ARN}', '')"
    profile = f"regexp_replace({arn}, '{_SQL_PROFILE}', '\\2')"
    return f"regexp_replace({profile}, '{_SQL_SUFFIX}', '')"
