#!/usr/bin/env bash
# The data-parallel path and the speed comparisons on a GPU, in one short script (about 10 minutes on one GPU):
#   1. the machine: torch, CUDA, NCCL, the GPU;
#   2. PPO, then GRPO, through `torchrun --nproc_per_node 1 -m rlhf_gym.cli train ... --device cuda`
#      at toy budgets on the shipped env, with RLHF_GYM_DISTRIBUTED=1 so that the one process
#      joins a real process group: gloo for CPU tensors, NCCL for CUDA ones
#      (agents/distributed.py); each run must say it joined that group and write its summary;
#   3. GRPO resumed from its checkpoint in such a group (rank 0 loads it and broadcasts);
#   4. the device tests, tests/agents/test_distributed_devices.py (collectives in a group of
#      one; PPO and GRPO in a group of one against the same runs without one);
#   5. `rlhf-gym bench --quick --device cuda` (P1, P2, memory; docs/performance.md's cuda rows).
# Every step prints "gpu_check: PASS|FAIL <step> ..." (a failure with the tail of its log,
# OUT/<step>.log); the last line counts them, and the exit status is the number of
# failures. The output of a GPU session goes into docs/group_agents.md ("Checked on a GPU").
#
#   benchmarks/gpu_check.sh [OUT]                 # OUT: run folders and logs (default runs/gpu_check/<UTC time>)
#   DEVICE=cpu benchmarks/gpu_check.sh /tmp/dry   # the same steps on CPU, gloo only: a dry run of the script
#
# Needs the project installed in the Python on PATH (or PYTHON=...) with a CUDA build of torch.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python}"
OUT="${1:-runs/gpu_check/$(date -u +%Y%m%d-%H%M%S)}"
STEP_TIMEOUT="${STEP_TIMEOUT:-120}"  # seconds per training step; the tests get twice as long
case "$DEVICE" in
  cuda) BACKEND="cpu:gloo,cuda:nccl" ;;
  cpu) BACKEND="gloo" ;;
  *) echo "gpu_check: DEVICE must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac
mkdir -p "$OUT" || exit 2
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "gpu_check: PASS $*"; }
fail() { failed=$((failed + 1)); echo "gpu_check: FAIL $*"; }

# step NAME SECONDS COMMAND...: run COMMAND under a timeout, its output in OUT/NAME.log
step() {
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  status=$?
  if [ "$status" -eq 0 ]; then
    pass "$name ($((SECONDS - start)) s)"
  else
    fail "$name (exit $status$([ "$status" -eq 124 ] && echo ", timed out at $limit s") after $((SECONDS - start)) s); the end of $OUT/$name.log:"
    tail -n 30 "$OUT/$name.log" | sed 's/^/    /'
  fi
  return "$status"
}

# check_run NAME [RUN]: step NAME's run (folder OUT/RUN, default OUT/NAME) joined the group and wrote its summary
check_run() {
  local name=$1 run=${2:-$1}
  if grep -qF "data-parallel: 1 rank(s) in a '$BACKEND' process group" "$OUT/$name.log"; then
    pass "$name joined a '$BACKEND' process group of one"
  else
    fail "$name: no 'data-parallel: 1 rank(s) in a '$BACKEND' process group' line in $OUT/$name.log"
  fi
  "$PYTHON" - "$OUT/$run" <<'EOF' && pass "$name summary" || fail "$name summary ($OUT/$run/summary.json)"
import json, sys
s = json.load(open(sys.argv[1] + "/summary.json"))
assert s["world_size"] == 1, f"world_size {s['world_size']}"
change = s.get("gold_improvement_paired", float("nan"))
print(f"gpu_check:   {s['agent']}: {s['env_steps']} env steps, {s['iterations']} iterations in {s['wall_time_seconds']} s, "
      f"paired gold change {change:+.3f}, final KL {s['final']['kl']:.2f}, world_size {s['world_size']}")
EOF
}

# 1. The machine
echo "gpu_check: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') device=$DEVICE out=$OUT"
if ! "$PYTHON" - "$DEVICE" <<'EOF'; then
import sys
import torch
import torch.distributed as dist
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
print(f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, NCCL available {dist.is_nccl_available()}, "
      f"gloo available {dist.is_gloo_available()}, {torch.cuda.device_count()} GPU(s): {gpu}")
sys.exit(1 if sys.argv[1] == "cuda" and not (torch.cuda.is_available() and dist.is_nccl_available()) else 0)
EOF
  fail "machine: --device $DEVICE needs torch with CUDA and NCCL here; nothing else can run"
  echo "gpu_check: $passed passed, $failed failed"
  exit "$failed"
fi

# 2. PPO and GRPO through torchrun, one process in a process group
torchrun=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1)  # the torchrun command
common=(--env RLHF-Summarize-v0 --device "$DEVICE" --seed 0 --threads 4 --eval-episodes 32 --paired-posts 32)
step ppo "$STEP_TIMEOUT" env RLHF_GYM_DISTRIBUTED=1 "${torchrun[@]}" -m rlhf_gym.cli train --agent ppo "${common[@]}" \
  --num-envs 32 --total-steps 3000 --out "$OUT/ppo" && check_run ppo
step grpo "$STEP_TIMEOUT" env RLHF_GYM_DISTRIBUTED=1 "${torchrun[@]}" -m rlhf_gym.cli train --agent grpo "${common[@]}" \
  --num-prompts 8 --group-size 4 --total-steps 1500 --checkpoint-every 1 --out "$OUT/grpo" && check_run grpo

# 3. Resume in the group (the JSON state through gloo, weights and Adam moments through NCCL)
if [ -f "$OUT/grpo/summary.json" ]; then
  if step grpo-resume "$STEP_TIMEOUT" env RLHF_GYM_DISTRIBUTED=1 "${torchrun[@]}" -m rlhf_gym.cli train --agent grpo "${common[@]}" \
    --num-prompts 8 --group-size 4 --total-steps 3000 --checkpoint-every 1 --out "$OUT/grpo" --resume; then
    if grep -q "^resumed from" "$OUT/grpo-resume.log"; then
      pass "grpo-resume read its checkpoint: $(grep -m1 '^resumed from' "$OUT/grpo-resume.log")"
      check_run grpo-resume grpo
    else
      fail "grpo-resume: no 'resumed from' line in $OUT/grpo-resume.log"
    fi
  fi
else
  fail "grpo-resume: skipped, the grpo run left no summary"
fi

# 4. The device tests (their CUDA cases skip on CPU)
step tests $((2 * STEP_TIMEOUT)) "$PYTHON" -m pytest -q -p no:cacheprovider -s -rs tests/agents/test_distributed_devices.py
grep -E "max \|group of one - plain\||passed|failed|SKIPPED" "$OUT/tests.log" | sed 's/^/gpu_check:   /'

# 5. The speed comparisons on the GPU (issue 28): P1 up to N=4096 with the bookkeeping share,
#    P2 in fp32 and bf16, the main job's memory; JSON into OUT, docs/performance.md updated
#    (only the cuda rows: a part's rows are keyed by device). The GPU tests of tests/bench.
if [ "$DEVICE" = cuda ]; then
  step bench $((3 * STEP_TIMEOUT)) "$PYTHON" -m rlhf_gym.cli bench --quick --device cuda --parts p1 p2 memory --json "$OUT/bench.json"
  step bench-bf16 "$STEP_TIMEOUT" "$PYTHON" -m rlhf_gym.cli bench --quick --device cuda --parts p2 --bf16 --no-doc --json "$OUT/bench_bf16.json"
  step bench-tests "$STEP_TIMEOUT" "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/bench -m "not slow"
  grep -E "^\[bench|x |passed|failed" "$OUT/bench.log" "$OUT/bench-bf16.log" 2>/dev/null | tail -20 | sed 's/^/gpu_check:   /'
fi

echo "gpu_check: $passed passed, $failed failed (logs and run folders in $OUT)"
exit "$failed"
