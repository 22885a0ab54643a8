"""Scaling laws: declarative law forms (:mod:`.forms`, registered in :mod:`.registry`), a
deterministic fitter, bootstrap, validation, planning. Pure: records in, numbers and report
objects out; :func:`rlscale.fit` is the public entry, ``rlscale fit`` its command."""
