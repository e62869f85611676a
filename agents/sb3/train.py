"""Train Stable-Baselines3 / sb3-contrib agents on a token env: PPO, A2C, MaskablePPO, TRPO.

    rlhf-gym train --agent sb3-ppo --total-steps 60000 --seed 0 --out runs/sb3-ppo
    rlhf-gym train --agent sb3-maskable-ppo --top-p 0.9 --mask-refresh-every 10 ...

The same run-folder contract as our PPO (`rlhf_gym.agents.ppo`): TensorBoard logs in
``out/tensorboard`` (SB3's own ``train/``, ``rollout/`` and ``time/`` scalars through its
logger, ours under ``charts/`` and ``eval/``), an evaluation on the valid split with
proxy reward, gold score, KL and length every ``eval_every`` iterations, atomic
checkpoints, ``--resume``, ``training_curves.png``, ``summary.json`` with the same keys,
and ``final_policy/`` as an ordinary Hugging Face checkpoint.

How the pieces fit (docs/sb3.md):

    TokenVectorEnv (SAME_STEP) -> KLRewardWrapper(reference, beta) -> SB3VecEnv -> VecMonitor
        -> PPO | A2C | MaskablePPO (masks: SB3VecEnv.action_masks -> TopPMaskProvider) | TRPO
           (as `FusedGradTRPO`: the same algorithm, actor gradients in one autograd call)

- The policy is `CausalLMActorCriticPolicy` (or its maskable variant): the env's SFT
  model as actor, a value head as critic, sampling at ``temperature``.
- KL regularisation (Ziegler et al. 2019): the wrapper adds ``beta * log pi_ref`` per
  step and the agent adds ``beta * H(pi)``: ``ent_coef = kl_coef`` for PPO, A2C and
  MaskablePPO, and `PolicyLogProbReward` for TRPO, which has no entropy term. Together
  they optimise reward - beta * KL(pi || pi_ref) (`rlhf_gym.env.kl_penalty`).
- MaskablePPO is NLPO (Ramamurthy et al. 2023): top-p masks from a mask model that
  starts as the reference and is refreshed from the policy every ``mask_refresh_every``
  iterations (`rlhf_gym.agents.sb3.masks`). Evaluation samples from the unmasked LM at
  ``temperature`` (what ``final_policy`` exports), like every other agent.
- An iteration is one ``model.learn`` call of ``n_steps * num_envs`` env steps (a rollout
  and its update); this loop evaluates and checkpoints between iterations.

Model copies: policy (trained), reference (frozen, KL reward), the env's preference model
(frozen), plus the mask model (MaskablePPO) and the critic's own LM copy
(``separate_critic``, the default for TRPO, whose critic update must not touch the
actor's parameters and would otherwise train only a linear head).

Checkpoints: tensors (safetensors, and a ``weights_only`` optimizer state) and JSON only.
We never write SB3 ``.zip`` files: they embed cloudpickle, which runs code when loaded, so
never load one from a source you do not trust. Our checkpoints are for resuming our own
runs. Resuming restores the weights, optimizer, counters and history; the env starts
fresh episodes (episodes in flight at the checkpoint are dropped, unlike our PPO, whose
batches are episode-synchronous), so a resumed run is close to, not identical with, an
uninterrupted one. The run folder rules are every agent's (`prepare_run_folder`): one run
per folder (``--overwrite`` to replace one), and ``--resume`` only with the checkpoint's
config up to its budget and bookkeeping (``--force`` to override).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure as configure_sb3_logger
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from tqdm.auto import tqdm

from rlhf_gym.agents.common import (
    EVAL_SEED_OFFSET,
    IterationHook,
    RunLogger,
    eval_line,
    evaluate,
    finish_run,
    latest_checkpoint,
    make_env,
    paired_final_evaluation,
    policy_path,
    prepare_run_folder,
    protocol_temperature,
    proxy_rewards,
    read_state,
    rollout_seed,
    write_checkpoint,
)
from rlhf_gym.agents.sb3.kl_reward import PolicyLogProbReward
from rlhf_gym.agents.sb3.masks import MaskModelRefresh, TopPMaskProvider
from rlhf_gym.agents.sb3.policy import CausalLMActorCriticPolicy, MaskableCausalLMActorCriticPolicy
from rlhf_gym.agents.sb3.trpo import FusedGradTRPO
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.kl_penalty import KLRewardWrapper
from rlhf_gym.lm.policy import CausalLMPolicy

Algo = Literal["ppo", "a2c", "maskable-ppo", "trpo"]
ALGOS: tuple[str, ...] = ("ppo", "a2c", "maskable-ppo", "trpo")


@dataclass
class SB3Config:
    """SB3 agent hyper-parameters; RLHF values (N+, Huang et al. 2024) where they apply.

    Not tuned for our tiny models: a starting point with the same budget as our PPO.
    """

    env: str = "RLHF-Summarize-v0"  # registered env id
    total_steps: int = 60_000  # env steps (generated tokens, all sub-envs) to train for
    seed: int = 0  # seeds prompts, sampling, minibatch order and the networks' heads
    out: str = "runs/sb3"  # run folder: TensorBoard logs, checkpoints, plot, summary.json
    policy: str | None = None  # causal LM (hub id or path); default: the env's SFT policy
    device: str = "cpu"  # torch device of env, policy and models
    threads: int = 2  # torch CPU threads
    algo: Algo = "ppo"  # which SB3 / sb3-contrib algorithm
    num_envs: int = 32  # sub-envs stepped together
    n_steps: int = 48  # env steps per sub-env per rollout (one iteration = n_steps * num_envs)
    batch_size: int = 256  # minibatch size (PPO, MaskablePPO; TRPO's critic)
    n_epochs: int = 4  # epochs per rollout (PPO, MaskablePPO: N+ #4; TRPO: critic passes)
    # Adam step size (TRPO: the critic's only). Our PPO's default: at 1e-4 SB3 PPO drifted
    # to KL 7.4 nats and lost 0.09 gold in 3,072 steps (3 seeds); at 3e-5, KL 0.8-1.3.
    learning_rate: float = 3e-5
    kl_coef: float = 0.05  # beta: KL(pi || pi_ref) coefficient (N+ uses 0.05)
    ent_coef: float | None = None  # entropy bonus; None = kl_coef: objective reward - beta KL
    temperature: float | None = None  # sampling temperature of policy, reference, masks and eval (N+ #16); None: the task's (0.7)
    gamma: float = 1.0  # discount (N+)
    gae_lambda: float = 0.95  # GAE lambda (N+)
    clip_range: float = 0.2  # PPO ratio clip (N+)
    vf_coef: float = 0.1  # value-loss weight (N+; PPO, A2C, MaskablePPO)
    max_grad_norm: float = 1.0  # global gradient-norm clip (PPO, A2C, MaskablePPO)
    target_kl: float = 0.01  # TRPO trust region (SB3's default)
    separate_critic: bool | None = None  # critic on its own LM copy; None = only for TRPO
    share_prefixes: bool = True  # forward each episode once per batch, not once per step (exact)
    cache_prompts: bool = True  # rollouts forward each prompt once, then only responses (exact)
    top_p: float = 0.9  # MaskablePPO: nucleus mass of the action masks (NLPO)
    mask_refresh_every: int = 10  # MaskablePPO: iterations between mask-model refreshes
    missing_eos_penalty: float | None = 1.0  # subtracted from responses without EOS (N+ #23)
    eval_every: int = 10  # iterations between evaluations on the valid split
    eval_episodes: int = 128  # valid-split episodes per evaluation (fixed prompts and seed)
    # Valid posts on which the final policy and the SFT policy are sampled with the same
    # prompts and sampling stream: summary.json's gold_improvement_paired (0 skips it).
    paired_posts: int = 512
    checkpoint_every: int = 10  # iterations between atomic checkpoints
    resume: bool = False  # continue from the run folder's last checkpoint (an error if there is none)
    overwrite: bool = False  # a fresh run into a folder holding a run: remove that run first
    force: bool = False  # --resume with a config that differs from the checkpoint's (listed as a warning)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        for name in ("total_steps", "num_envs", "n_steps", "batch_size", "n_epochs", "eval_every",
                     "eval_episodes", "checkpoint_every", "mask_refresh_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        samples = self.n_steps * self.num_envs
        if self.algo in ("ppo", "maskable-ppo") and samples % self.batch_size != 0:
            raise ValueError(
                f"batch_size ({self.batch_size}) must divide n_steps * num_envs "
                f"({self.n_steps} * {self.num_envs}) so that every minibatch is full"
            )
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ValueError(f"kl_coef must be a finite number >= 0, got {self.kl_coef}")
        if self.ent_coef is not None and self.algo == "trpo":
            raise ValueError(
                "TRPO has no entropy bonus: leave ent_coef unset (the KL's entropy half goes "
                "into the rewards, PolicyLogProbReward)"
            )
        if self.paired_posts < 0 or self.paired_posts == 1:
            raise ValueError(f"paired_posts must be 0 (off) or >= 2, got {self.paired_posts}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


# Episode statistics ---------------------------------------------------------------
class EpisodeStats(BaseCallback):
    """Per-episode proxy reward, gold score, KL and length of the episodes finished in rollouts.

    The KL of an episode is the sum over its tokens of ``log pi(a_t|s_t) - log pi_ref(a_t|s_t)``
    (k1; the rollout's log-probs and the wrapper's ``ref_logprob``), the quantity our PPO
    reports. The proxy reward figures are every agent's (`rlhf_gym.agents.common.proxy_rewards`):
    ``proxy_reward`` the preference score alone, ``proxy_reward_with_penalty`` with the
    missing-EOS penalty; neither holds the KL term.
    """

    def __init__(self, num_envs: int) -> None:
        super().__init__()
        self._kl = np.zeros(num_envs)  # (N,) running KL of the episode in flight
        self.episodes: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals["infos"]
        dones: np.ndarray = self.locals["dones"]
        log_probs = self.locals["log_probs"].detach().cpu().numpy()  # (N,)
        ref = np.array([info.get("ref_logprob", 0.0) for info in infos])
        self._kl += log_probs - ref
        for i in np.flatnonzero(dones):  # finished episodes only
            info = infos[i]
            self.episodes.append({
                "proxy": info["proxy"],
                "penalty": info["penalty"],
                "gold": info.get("gold", float("nan")),
                "kl": float(self._kl[i]),
                "response_length": float(info["response_length"]),
            })
        self._kl[dones] = 0.0
        return True

    def reset(self) -> None:
        """Forget episodes in flight (the env restarts them on resume)."""
        self._kl[:] = 0.0

    def flush(self) -> dict[str, float]:
        """Means over the episodes finished since the last flush (NaN if none)."""
        episodes, self.episodes = self.episodes, []
        keys = ("gold", "kl", "response_length")
        if not episodes:
            return {key: float("nan") for key in ("proxy_reward", "proxy_reward_with_penalty", *keys)} | {"episodes": 0}
        proxy, penalty = (torch.tensor([e[key] for e in episodes], dtype=torch.float64) for key in ("proxy", "penalty"))
        means = {key: _nan_mean([e[key] for e in episodes]) for key in keys}
        return proxy_rewards(proxy, penalty) | means | {"episodes": len(episodes)}


def _nan_mean(values: list[float]) -> float:
    """Mean of the non-NaN values; NaN when there are none (a task without a gold judge)."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[~np.isnan(array)]
    return float(finite.mean()) if finite.size else float("nan")


# Set-up ---------------------------------------------------------------------------
def build_model(
    config: SB3Config, venv: VecEnv, policy_path: str, prompt_width: int, temperature: float
) -> BaseAlgorithm:
    """The SB3 algorithm with the LM policy; ``ent_coef`` defaults to ``kl_coef``."""
    separate_critic = config.separate_critic
    if separate_critic is None:
        separate_critic = config.algo == "trpo"  # TRPO's critic update must not touch the actor
    policy_kwargs = dict(
        model_name_or_path=policy_path,
        prompt_width=prompt_width,
        temperature=temperature,
        share_features_extractor=not separate_critic,
        share_prefixes=config.share_prefixes,
        cache_prompts=config.cache_prompts,
    )
    common: dict[str, Any] = dict(
        learning_rate=config.learning_rate,
        n_steps=config.n_steps,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        policy_kwargs=policy_kwargs,
        seed=config.seed,
        device=config.device,
        verbose=0,
    )
    ent_coef = config.kl_coef if config.ent_coef is None else config.ent_coef
    ppo_like = dict(
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        clip_range=config.clip_range,
        ent_coef=ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
    )
    if config.algo == "ppo":
        return PPO(CausalLMActorCriticPolicy, venv, **ppo_like, **common)
    if config.algo == "maskable-ppo":
        return MaskablePPO(MaskableCausalLMActorCriticPolicy, venv, **ppo_like, **common)
    if config.algo == "a2c":
        # Adam rather than SB3's default RMSprop (fine-tuning LMs), advantages whitened (N+ #19).
        return A2C(
            CausalLMActorCriticPolicy, venv, ent_coef=ent_coef, vf_coef=config.vf_coef,
            max_grad_norm=config.max_grad_norm, use_rms_prop=False, normalize_advantage=True, **common,
        )
    # TRPO differentiates the KL twice (Hessian-vector products): eager attention, since
    # PyTorch's fused SDPA kernels have no second derivative on CPU.
    policy_kwargs["attn_implementation"] = "eager"
    return FusedGradTRPO(
        CausalLMActorCriticPolicy, venv, batch_size=config.batch_size, target_kl=config.target_kl,
        n_critic_updates=config.n_epochs, **common,
    )


# Checkpoints ----------------------------------------------------------------------
def save_checkpoint(
    run_dir: Path, model: BaseAlgorithm, mask_provider: TopPMaskProvider | None, state: dict[str, Any], config: SB3Config
) -> None:
    """The policy's LM(s) and value head, its optimiser (tensors and numbers only: loads with
    ``torch.load(weights_only=True)``) and the mask model, written atomically with the state
    and config."""

    def write_tensors(folder: Path) -> None:
        save_model(model.policy, str(folder / "policy.safetensors"))
        torch.save(model.policy.optimizer.state_dict(), folder / "optimizer.pt")
        if mask_provider is not None:
            save_model(mask_provider.model, str(folder / "mask_model.safetensors"))

    write_checkpoint(run_dir, state, write_tensors, config)


def load_checkpoint(
    checkpoint: Path, model: BaseAlgorithm, mask_provider: TopPMaskProvider | None
) -> dict[str, Any]:
    """Restore weights (strictly), optimizer and counters from one of our checkpoints; return its state."""
    device = str(model.policy.device)
    load_model(model.policy, str(checkpoint / "policy.safetensors"), device=device)
    optimizer_state = torch.load(checkpoint / "optimizer.pt", weights_only=True, map_location=device)
    model.policy.optimizer.load_state_dict(optimizer_state)
    if mask_provider is not None:
        load_model(mask_provider.model, str(checkpoint / "mask_model.safetensors"), device=device)
    state = read_state(checkpoint)
    model.num_timesteps = state["env_steps"]
    model._n_updates = state["n_updates"]  # type: ignore[attr-defined]
    return state


def resumed_env_seed(config: SB3Config, iteration: int) -> int:
    """The env's reset seed when a run resumes at ``iteration``: the iteration's own block of
    ``num_envs`` sub-env keys (`rollout_seed`), so no prompt stream of the run is replayed."""
    return rollout_seed(config.seed, iteration, config.num_envs)


# Training -------------------------------------------------------------------------
def train(config: SB3Config, on_iteration: IterationHook | None = None) -> dict[str, Any]:
    """Train the configured SB3 algorithm; return the run summary (also written to summary.json).

    ``on_iteration(state, policy)`` is called after each iteration (`IterationHook`), with the
    trained LM as a `CausalLMPolicy` view.
    """
    # Set-up
    torch.set_num_threads(config.threads)
    temperature = protocol_temperature(config.env, config.temperature)
    config = dataclasses.replace(config, temperature=temperature)  # the run records what it used
    run_dir = prepare_run_folder(config)
    device = torch.device(config.device)
    env_settings = dict(device=config.device, missing_eos_penalty=config.missing_eos_penalty)
    core = make_env(config.env, config.num_envs, "train", autoreset_mode="same_step", **env_settings)
    eval_env = make_env(config.env, config.eval_episodes, "valid", autoreset_mode="disabled", **env_settings)
    path = policy_path(config.env, config.policy)
    torch.manual_seed(config.seed)
    reference = CausalLMPolicy.from_pretrained(path, temperature=temperature).to(device)
    reference.eval().requires_grad_(False)
    mask_provider = None
    if config.algo == "maskable-ppo":  # NLPO: the mask model starts as the reference
        mask_provider = TopPMaskProvider(
            copy.deepcopy(reference.model), prompt_width=core.max_prompt_tokens,
            vocab_size=core.vocab_size, top_p=config.top_p, temperature=temperature,
            cache_prompts=config.cache_prompts,
        )
    kl_env = KLRewardWrapper(core, reference, config.kl_coef, cache_prompts=config.cache_prompts)
    venv = VecMonitor(SB3VecEnv(kl_env, mask_provider=mask_provider))
    model = build_model(config, venv, path, core.max_prompt_tokens, temperature)
    model.set_logger(configure_sb3_logger(str(run_dir / "tensorboard"), ["tensorboard"]))
    stats = EpisodeStats(config.num_envs)
    callbacks: list[BaseCallback] = [stats]
    if mask_provider is not None:
        callbacks.append(MaskModelRefresh(mask_provider, config.mask_refresh_every))
    if config.algo == "trpo":
        callbacks.append(PolicyLogProbReward(config.kl_coef))
    callback = CallbackList(callbacks)
    # A view of the trained LM for evaluation (shares its weights; KV-cached sampling).
    lm_policy = CausalLMPolicy(model.policy.lm, temperature=temperature)  # type: ignore[attr-defined]
    eval_seed = config.seed + EVAL_SEED_OFFSET  # fixed valid-split prompts and sampling, as in our PPO

    def run_eval(env_steps: int) -> dict[str, float]:
        model.policy.set_training_mode(False)
        return {"env_steps": env_steps, **evaluate(eval_env, lm_policy, reference, eval_seed)}

    state: dict[str, Any] = {
        "iteration": 0, "env_steps": 0, "n_updates": 0, "history": [], "evals": [], "wall_time": 0.0,
    }
    checkpoint = latest_checkpoint(run_dir) if config.resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, mask_provider)
        venv.seed(resumed_env_seed(config, state["iteration"]))  # fresh episodes, a derived seed
        print(f"resumed from {checkpoint} at iteration {state['iteration']}, {state['env_steps']} steps")
    purge_step = state["env_steps"] if checkpoint else None
    logger = RunLogger(run_dir, config=asdict(config), purge_step=purge_step)
    if not state["evals"]:
        state["evals"].append(run_eval(0))
        logger.scalars("eval", state["evals"][-1], 0)
    samples_per_iteration = config.n_steps * config.num_envs
    progress = tqdm(total=config.total_steps, initial=state["env_steps"], unit="tok",
                    desc=f"sb3-{config.algo}", dynamic_ncols=True)
    started = time.time() - state["wall_time"]

    while state["env_steps"] < config.total_steps:
        # Rollout and update (one SB3 iteration)
        set_random_seed(rollout_seed(config.seed, state["iteration"], 1))  # resumable: derived, not carried
        t0 = time.time()
        model.learn(total_timesteps=samples_per_iteration, callback=callback, log_interval=1,
                    reset_num_timesteps=False, progress_bar=False)
        seconds = time.time() - t0

        # Logging
        steps = model.num_timesteps - state["env_steps"]
        state["env_steps"] = model.num_timesteps
        state["n_updates"] = model._n_updates  # type: ignore[attr-defined]
        state["iteration"] += 1
        state["wall_time"] = time.time() - started
        speed = steps / max(seconds, 1e-9)  # rollout and update together
        record = {"env_steps": state["env_steps"], **stats.flush(), "steps_per_second": speed}
        state["history"].append(record)
        logger.scalars("charts", record, state["env_steps"])
        progress.update(steps)
        progress.set_postfix(proxy=f"{record['proxy_reward']:+.2f}", gold=f"{record['gold']:.3f}",
                             kl=f"{record['kl']:.2f}")
        last_iteration = state["env_steps"] >= config.total_steps
        if state["iteration"] % config.eval_every == 0 or last_iteration:
            ev = run_eval(state["env_steps"])
            state["evals"].append(ev)
            logger.scalars("eval", ev, state["env_steps"])
            progress.write(eval_line(ev))
        if state["iteration"] % config.checkpoint_every == 0 or last_iteration:
            save_checkpoint(run_dir, model, mask_provider, state, config)
        if on_iteration is not None:
            on_iteration(state, lm_policy)
    progress.close()
    logger.close()
    model.logger.close()

    # Results (the value head stays in the run's checkpoint, not in final_policy/)
    if config.paired_posts:
        model.policy.set_training_mode(False)
        state["paired"] = paired_final_evaluation(eval_env, lm_policy, reference, config.paired_posts)
    summary = finish_run(
        run_dir, f"sb3-{config.algo}", config, state, model.policy.lm, core.tokenizer,  # type: ignore[attr-defined]
        title=f"SB3 {config.algo} on {config.env} (seed {config.seed})",
    )
    return summary


if __name__ == "__main__":
    import tyro

    train(tyro.cli(SB3Config))
