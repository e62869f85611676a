#!/usr/bin/env bash
# Reproduce the baseline submissions of leaderboard/submissions/ (run from the repository root).
#   - the SFT policy (at the protocol temperature and at T=0.3), and best-of-4 / best-of-16 / best-of-64 sampling
#     from it (no training; their runs differ only in the protocol's sampling seed);
#   - PPO, RLOO and GRPO at the README main job's budget (40k env steps), seeds 0-2;
#   - the four SB3 / sb3-contrib agents at the comparison's budget (3,072 env steps), seeds 0-2.
# Training runs are ordinary `rlhf-gym train` runs with their defaults, into runs/baselines/
# (a finished run, one with a summary.json, is not trained again). Each final policy is then
# exported as an fp16 safetensors checkpoint into leaderboard/checkpoints/AGENT/seedK/, which
# is committed: the submissions point there (relative to their own folder), so anyone can
# `rlhf-gym leaderboard verify leaderboard/submissions/AGENT.json` from a fresh clone.
# The submissions record each run's exact training command.
#
#   leaderboard/baselines.sh                 # every row
#   leaderboard/baselines.sh sft ppo sb3-a2c # only these rows (sft, sft-t0.3, best-of-4, best-of-16, best-of-64, ppo, ...)
#   THREADS=1 leaderboard/baselines.sh ...   # torch threads of each evaluation (default 2)
#   ENV=RLHF-Dialogue-v0 leaderboard/baselines.sh ...  # another env: its files are named TASK-ROW.json,
#                                             # its checkpoints go to leaderboard/checkpoints/TASK/, its runs to runs/baselines/TASK/
set -euo pipefail
ROWS=("$@")
wanted() { [ ${#ROWS[@]} -eq 0 ] || [[ " ${ROWS[*]} " == *" $1 "* ]]; }
ENV=${ENV:-RLHF-Summarize-v0}
TASK=$(python -c "import sys, rlhf_gym; print(rlhf_gym.get_task(sys.argv[1]).name)" "$ENV")
SFT=envs/$TASK/assets/sft_policy
SUBMISSIONS=leaderboard/submissions
CHECKPOINTS=leaderboard/checkpoints
RUNS=runs/baselines
PREFIX=""
if [ "$TASK" != summarize ]; then  # the first env keeps its original file names
    PREFIX=$TASK-
    CHECKPOINTS=$CHECKPOINTS/$TASK
    RUNS=$RUNS/$TASK
fi

wanted sft && rlhf-gym evaluate --threads ${THREADS:-2} --env $ENV --policy $SFT $SFT $SFT --seed 0 1 2 --agent "SFT policy (no RL)" \
    --training-env-steps 0 --submission $SUBMISSIONS/${PREFIX}sft.json
wanted sft-t0.3 && rlhf-gym evaluate --threads ${THREADS:-2} --env $ENV --policy temperature-0.3:$SFT temperature-0.3:$SFT temperature-0.3:$SFT \
    --seed 0 1 2 --agent "SFT policy sampled at T=0.3 (no RL)" --training-env-steps 0 --submission $SUBMISSIONS/${PREFIX}sft-t0.3.json
for n in 4 16 64; do
    wanted best-of-$n || continue
    rlhf-gym evaluate --threads ${THREADS:-2} --env $ENV --policy best-of-$n:$SFT best-of-$n:$SFT best-of-$n:$SFT --seed 0 1 2 \
        --agent "best-of-$n sampling from the SFT policy (by the preference model)" --training-env-steps 0 \
        --submission $SUBMISSIONS/${PREFIX}best-of-$n.json
done

train_and_submit() {  # agent, budget
    local agent=$1 budget=$2 policies=() steps=0
    wanted $agent || return 0
    local command="rlhf-gym train --agent $agent --env $ENV --total-steps $budget --seed {seed} --paired-posts 0 --out $RUNS/$agent/seed{seed}"
    for seed in 0 1 2; do
        local out=$RUNS/$agent/seed$seed
        [ -f $out/summary.json ] || ${command//\{seed\}/$seed}
        python -c "import sys, torch; from rlhf_gym import CausalLMPolicy; \
CausalLMPolicy.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], dtype=torch.float16)" \
            $out/final_policy $CHECKPOINTS/$agent/seed$seed
        policies+=($CHECKPOINTS/$agent/seed$seed)
        steps=$(python -c "import json; print(max($steps, json.load(open('$out/summary.json'))['env_steps']))")
    done
    rlhf-gym evaluate --threads ${THREADS:-2} --env $ENV --policy "${policies[@]}" --seed 0 1 2 --agent "$agent (rlhf-gym, $budget-step budget)" \
        --training-env-steps $steps --training-command "$command" --submission $SUBMISSIONS/${PREFIX}$agent.json
}
for agent in ppo rloo grpo; do train_and_submit $agent 40000; done
for agent in sb3-ppo sb3-a2c sb3-maskable-ppo sb3-trpo; do train_and_submit $agent 3072; done
