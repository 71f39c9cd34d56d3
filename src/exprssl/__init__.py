"""exprssl."""
