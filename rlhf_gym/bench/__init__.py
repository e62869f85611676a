"""``rlhf-gym bench``: every speed claim of the project, measured side by side in one run.

Each comparison runs its two sides interleaved (A B A B ...) in the same process and
reports the median of the pairwise ratios after a warm-up, because these machines are
shared and noisy: a competing process slows both sides of a pair alike, so the ratio of
a pair survives where a single time does not (docs/performance.md).

- `rlhf_gym.bench.interleave`: the A/B harness (one home for how a ratio is measured);
- `rlhf_gym.bench.env_bookkeeping`: P1, the env's own cost against ``SyncVectorEnv``;
- `rlhf_gym.bench.rollout`: P2, a rollout through the env against ``generate()`` plus one
  batched reward call;
- `rlhf_gym.bench.training`: P3, our PPO, RLOO and GRPO against TRL's trainers, each side
  in a worker process (`trl_worker`, `trl_pacing`), at settings matched in `trl_settings`,
  with TRL built by `trl_trainers` from a folder outside the environment (`trl_install`:
  TRL is never a dependency of the package);
- `rlhf_gym.bench.learning`: P4, paired gold gain against training seconds per trainer;
- `rlhf_gym.bench.memory`: peak RSS of the main job and RSS over a long env run;
- `rlhf_gym.bench.report`: the JSON file and the table in docs/performance.md;
- `rlhf_gym.bench.run`: the command.
"""
