"""Moved to ``exprssl.options`` (0.3.0); kept so ``exprssl.methods.options`` imports still work."""

from ..options import (  # noqa: F401
    OptionValueError,
    Spec,
    aliases_of,
    describe,
    option,
    options_dict,
    validate_options,
)
