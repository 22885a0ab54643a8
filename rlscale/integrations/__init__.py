"""Plug-ins that let other frameworks use rlscale's components (see :mod:`.verl`)."""
