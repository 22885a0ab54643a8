"""rlscale: run, measure and predict RL post-training of language models on math reasoning.

The seven tools as functions (see README, "Python API")::

    import rlscale
    scored = list(rlscale.reward(samples))              # streaming tools return iterators
    runs = rlscale.evaluate(scored, by=["step", "N"])
    fit = rlscale.fit(runs, law="saturating")           # a Fit: .params, .predict(), .plot()

Importing rlscale imports none of them; each is loaded on first use (PEP 562), and none needs
torch until it samples or trains.
"""

import importlib

__version__ = "0.1.0"

# name -> module under rlscale.api
_API = {"curate": "curate", "rollout": "rollout", "reward": "reward", "grpo_step": "grpo_step",
        "evaluate": "evaluate", "flops": "flops", "fit": "fit", "Fit": "fit"}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rlscale.api.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
