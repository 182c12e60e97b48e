"""Imports every built-in objective module so their `@register_objective` decorators run."""

from mimsa.objectives import (  # noqa: F401
    ba_bound,
    cmd,
    contrastive,
    cpc,
    dependency_js,
    dependency_kl,
    dependency_wasserstein,
    entropy,
    reconstruction,
    soft_orthogonality,
    ulgm,
)
