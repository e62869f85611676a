"""Learned rewards: the preference model, its ensemble, and the loader that takes either.

The gold judges are not here: each world's judge lives with its world (``rlhf_gym.envs``).
"""
