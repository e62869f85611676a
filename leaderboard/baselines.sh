#!/usr/bin/env bash
# Reproduce the baseline submissions of leaderboard/submissions/ (run from the repository root):
# the SFT policy, and PPO, RLOO and GRPO at the README main job's budget (20k env steps), seeds 0-2.
# Each agent's runs are ordinary `rlhf-gym train` runs; `rlhf-gym leaderboard verify` re-evaluates
# the checkpoints these commands leave in runs/baselines/.
set -euo pipefail
ENV=RLHF-Summarize-v0
SFT=envs/summarize/assets/sft_policy
rlhf-gym evaluate --env $ENV --policy $SFT $SFT $SFT --seed 0 1 2 --agent "SFT policy (no RL)" \
    --training-env-steps 0 --code https://github.com/rlhf-gym/rlhf-gym --submission leaderboard/submissions/sft.json
for agent in ppo rloo grpo; do
    policies=()
    for seed in 0 1 2; do
        out=runs/baselines/$agent/seed$seed
        [ -f $out/summary.json ] || rlhf-gym train --agent $agent --env $ENV --total-steps 20000 --seed $seed --paired-posts 0 --out $out
        policies+=($out/final_policy)
    done
    steps=$(python -c "import json,sys; print(max(json.load(open(f'runs/baselines/$agent/seed{s}/summary.json'))['env_steps'] for s in (0,1,2)))")
    rlhf-gym evaluate --env $ENV --policy "${policies[@]}" --seed 0 1 2 --agent "$agent (rlhf-gym)" \
        --training-env-steps $steps --code https://github.com/rlhf-gym/rlhf-gym --submission leaderboard/submissions/$agent.json
done
