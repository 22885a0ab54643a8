"""Scaling laws: declarative law forms, a deterministic fitter, bootstrap, validation, planning."""
