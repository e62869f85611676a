"""Learned rewards: the reward seam, the preference model, its ensemble, and the loader that takes either.

- `reward_model`: the `RewardModel` protocol the env scores with (``score(prompts,
  responses)``, optionally ``score_ids``) and the open registry of named reward scorers
  (``"preference"``, ``"gold"``; `register_reward_scorer` adds more);
- `preference_model`: `PreferenceModel`, the shipped learned reward (a `RewardModel`);
- `preference_ensemble`: `PreferenceEnsemble`, several preference models as one;
- `loading`: `load_reward_model`, which loads either by hub id or path.

The gold judges are not here: each world's judge lives with its world (``rlhf_gym.envs``).
"""
