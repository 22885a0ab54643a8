"""rlscale: run, measure and predict RL post-training of language models on math reasoning."""

__version__ = "0.1.0"
