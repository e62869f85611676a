"""The leaderboard, installed as ``rlhf_gym.leaderboard``: the evaluation protocol, the
submission format, validation, verification and the published table.

- `protocol`: each env's fixed, versioned, hashed evaluation protocol;
- `evaluate`: run the protocol on a policy (``rlhf-gym evaluate``, `rlhf_gym.evaluate`) and
  write a submission;
- `validate`: check a submission file (``rlhf-gym leaderboard validate``);
- `verify`: re-run the protocol on a submission's checkpoints (``rlhf-gym leaderboard verify``);
- `build`: the table and the page (``rlhf-gym leaderboard build``).

The submissions, the schema and the generated ``README.md`` / ``index.html`` live in this
folder of the repository.
"""
