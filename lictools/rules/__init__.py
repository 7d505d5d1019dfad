"""The registry of counting rules: product name -> module. A new product is one new module here.

Modules are imported only when a pool of that product is used, so a login hook pays for one rule.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from lictools.errors import UsageError
from lictools.rules.base import COMMON_OPTIONS, Option, Rule

RULES: dict[str, str] = {
    "generic": "lictools.rules.generic",
    "aveva-batch": "lictools.rules.aveva_batch",
    "genero": "lictools.rules.genero",
    "magic-xpa": "lictools.rules.magic_xpa",
}

if TYPE_CHECKING:  # mypy checks every rule module against the Rule protocol
    from lictools.model import Pool
    from lictools.rules import aveva_batch, generic, genero, magic_xpa

    _CHECKED: tuple[Rule, ...] = (generic, aveva_batch, genero, magic_xpa)


def get_rule(product: str) -> Rule:
    """The rule module for ``product``; UsageError (exit 2) for an unknown product."""
    try:
        module = RULES[product]
    except KeyError:
        raise UsageError(f"unknown product {product!r}; known: {', '.join(sorted(RULES))}") from None
    return cast(Rule, importlib.import_module(module))


def detach_timeout(pool: Pool) -> int:
    """Seconds a detached session of ``pool`` keeps its seat (its rule's DETACH_OPTION; 0: freed at once).

    ValueError when the stored option is not a whole number (options are checked when set).
    """
    return int(pool.options.get(get_rule(pool.product).DETACH_OPTION, "0") or 0)


def rule_options(rule: Rule) -> dict[str, Option]:
    """Every pool option a product accepts: the common ones, then its own."""
    return {**COMMON_OPTIONS, **rule.OPTIONS}


def check_options(rule: Rule, given: dict[str, str]) -> dict[str, str]:
    """Validate ``given`` and fill in defaults; UsageError names the first bad key or value."""
    spec = rule_options(rule)
    out = {}
    for key, value in given.items():
        if key not in spec:
            raise UsageError(f"unknown option {key!r} for product {rule.NAME}; known: {', '.join(spec)}")
        try:
            out[key] = spec[key].check(value)
        except UsageError as exc:
            raise UsageError(f"option {key}: {exc.message}") from None
    for key, option in spec.items():
        out.setdefault(key, option.default)
    if not out["lease"]:
        out["lease"] = str(rule.DEFAULT_LEASE)
    return out


def check_feature(rule: Rule, feature: str | None) -> str:
    """The feature to use: the one given (checked), or the product's only feature."""
    from lictools import validate

    if feature is None:
        if len(rule.FEATURES) == 1:
            return rule.FEATURES[0]
        known = f" (one of {', '.join(rule.FEATURES)})" if rule.FEATURES else ""
        raise UsageError(f"--feature is required for product {rule.NAME}{known}")
    validate.name(feature, "feature")
    if rule.FEATURES and feature not in rule.FEATURES:
        raise UsageError(f"unknown feature {feature!r} for product {rule.NAME}; known: {', '.join(rule.FEATURES)}")
    return feature


def feature_title(rule: Rule, feature: str) -> str:
    """``dev (Development Client connection)``: the feature with the vendor's name for it, when it has one."""
    title = rule.FEATURE_TITLES.get(feature)
    return f"{feature} ({title})" if title and title != feature else feature
