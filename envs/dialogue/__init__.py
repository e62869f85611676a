"""RLHF-Dialogue-v0 (in preparation): a helpful-and-harmless assistant over a small knowledge base.

The world's code is here (`rlhf_gym.envs.dialogue.world.DialogueWorld`; the design is in
``docs/dialogue.md``), but the env is **not registered**: it has no built assets yet
(tokenizer, SFT policy, preference model, card). This package declares no ``TASK`` and no
``SUITE_ENV`` until ``rlhf-gym build-assets dialogue`` has written ``assets/``, so discovery
(`rlhf_gym.envs.SUITE`) skips it and ``gym.make("RLHF-Dialogue-v0")`` does not exist yet.
The design audit of its writers runs without assets::

    python -c "from rlhf_gym.worlds.design import writer_audit, render_writer_audit; \\
    from rlhf_gym.envs.dialogue.world import DialogueWorld; \\
    print(chr(10).join(render_writer_audit(writer_audit(DialogueWorld(), prompts=128))))"
"""

NOT_REGISTERED = "its assets are not built yet (rlhf-gym build-assets dialogue); docs/dialogue.md"
"""Why discovery finds no ``SUITE_ENV`` here; `tests/env/test_registration.py` requires
every world folder to be registered or to say why not."""
