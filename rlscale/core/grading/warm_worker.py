"""Preloaded by the grading pool's fork server (``dispatch.PRELOAD``): importing it runs every
registered grader's warm-up once there, so each worker forked from the server starts with the
slow libraries imported and their caches warm."""

from rlscale.core.grading.dispatch import warm_up

warm_up()
