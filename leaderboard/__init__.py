"""The leaderboard, installed as ``rlhf_gym.leaderboard``: the evaluation protocol, the
submission format, validation, verification and the published table.

- `protocol`: each env's fixed, versioned, hashed evaluation protocol;
- `evaluate`: run the protocol on a policy (``rlhf-gym evaluate``, `rlhf_gym.evaluate`) and
  write a submission;
- `validate`: check a submission file (``rlhf-gym leaderboard validate``);
- `verify`: re-run the protocol on a submission's checkpoints (``rlhf-gym leaderboard verify``);
- `policy_spec`: how a run names its policy (a relative path, a hub id with its revision, ``best-of-N:``);
- `intervals`: the two-level bootstrap interval of a mean over runs and test posts;
- `build`: the table and the page (``rlhf-gym leaderboard build``);
- `plot`: the page's gold-against-KL plot (stable markers, labels that never overprint).

The submissions, the schema and the generated ``README.md`` / ``index.html`` live in this
folder of the repository.
"""
