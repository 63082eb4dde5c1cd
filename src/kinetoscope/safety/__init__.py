"""Responsible use: the prompt policy that refuses harmful prompts before any compute."""

from kinetoscope.safety.policy import (
    CATEGORIES,
    CATEGORY_LABELS,
    PolicyConfig,
    PolicyDecision,
    PolicyError,
    PolicyRefusal,
    PromptPolicy,
    default_policy,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_LABELS",
    "PolicyConfig",
    "PolicyDecision",
    "PolicyError",
    "PolicyRefusal",
    "PromptPolicy",
    "default_policy",
]
