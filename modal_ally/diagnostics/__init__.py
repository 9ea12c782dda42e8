"""Diagnostics that are not needed at run time: the numerical duality check
(``python -m modal_ally.diagnostics.duality``)."""
