"""The reward plug-in loaded by VeRL 0.9.1's own get_custom_reward_fn, in VeRL's environment."""

from __future__ import annotations

from rlscale.integrations.verl_launch import plugin_path
from tests.verl_support import needs_verl, oracle


@needs_verl
def test_get_custom_reward_fn_loads_the_plugin_and_grades():
    cases = [["math__math", "so \\boxed{\\frac{1}{2}}", "0.5", {"index": 0}],
             ["aime2024", "\\boxed{204}", "204", None],
             ["math__math", "no answer", "7", {}],
             ["math__math", None, 3, {}]]  # never raises: a None response scores 0
    config = {"path": plugin_path(), "name": "compute_score"}
    results = oracle({"reward": {"config": config, "cases": cases}})["reward"]
    assert results == [{"score": 1.0, "acc": True, "pred": "\\frac{1}{2}"},
                       {"score": 1.0, "acc": True, "pred": "204"},
                       {"score": 0.0, "acc": False, "pred": ""},
                       {"score": 0.0, "acc": False, "pred": ""}]
    # reward_kwargs reach the plug-in: the math grader has no percent leniency
    config["reward_kwargs"] = {"grader": "math"}
    cases = [["math__math", "\\boxed{0.5}", "50", {}]]
    assert oracle({"reward": {"config": config, "cases": cases}})["reward"][0]["score"] == 0.0
