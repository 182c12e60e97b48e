"""Imports every built-in objective module so their `@register_objective` decorators run."""
