#!/usr/bin/env bash
# rlscale micro scaling study: the whole method of Tan et al. (2025) end to end on CPU, built
# only from rlscale's own subcommands in shell pipelines.
#
#   0. first, the real result: `rlscale fit` on the paper's own Qwen2.5 Base curves (shipped
#      with rlscale) reproduces Table 6's inter row beside the paper's numbers, with the Figure 1
#      plot (OUT/paper-table6.md, OUT/paper-figure1.png);
#   1. a task where RL can improve a skill: sums of digits, solved by writing out a running
#      total (rlscale/demo/task.py); difficulty = pass rate of a reference model
#      (rlscale rollout | rlscale reward), curated into an easy->hard curriculum and a stratified
#      held-out split with `rlscale curate`;
#   2. tiny Qwen2 base models of 4 sizes, briefly pretrained on solutions that write the
#      procedure out only half the time, some of them wrong: every answer is boxed, pass@8 is
#      far above pass@1;
#   3. per size, GRPO steps of `rlscale rollout | rlscale reward | rlscale grpo-step` (long-
#      running --follow stages, fed a batch per step), with the held-out split sampled in the
#      same rollout batch and scored with `rlscale eval` at every step, compute added by
#      `rlscale flops`, everything appended to runs.jsonl; in the full study also one size at
#      data reuse tau = 2, 4, 8, 16 (`rlscale curate --reuse`), and every size once more with
#      a second RL seed (SEED + 100) on the same base models and data (OUT/seedS/);
#   4. `rlscale fit runs.jsonl --law saturating --plot demo.png` (and the reuse panel,
#      reuse.png), the predictions (largest size held out, first 30% of each curve), and the
#      result on stdout, in OUT/summary.md and in OUT/summary.json (per size pass@1/pass@8
#      before and after, K_max, N_0, per seed, verdicts).
#
# Usage: scripts/demo.sh [--quick] [--out DIR] [--seed N] [--jobs N]
#   --quick   3 sizes, a few steps, no reuse panel, one seed: a ~1.5 minute check that the
#             pipeline works (CI)
#   --out     output directory (default: demo-out; it is replaced)
#   --seed    seed of the whole study (task, pretraining, sampling, fit) (default: 0)
#   --jobs    model sizes trained at the same time (default: 2, one per core)
# Progress goes to stderr; the result table to stdout (and OUT/summary.md).
set -euo pipefail

QUICK=0
OUT=demo-out
SEED=0
JOBS=2
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --seed) SEED=${2:?--seed needs a number}; shift ;;
        --seed=*) SEED=${1#--seed=} ;;
        --jobs) JOBS=${2:?--jobs needs a number}; shift ;;
        --jobs=*) JOBS=${1#--jobs=} ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $SEED =~ ^[0-9]+$ ]] || { echo "demo.sh: --seed must be a non-negative integer" >&2; exit 2; }
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: --jobs must be a positive integer" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Use the repository's virtual environment when the caller has not put one on PATH.
if ! command -v rlscale >/dev/null 2>&1 && [[ -x $REPO/.venv/bin/rlscale ]]; then
    PATH="$REPO/.venv/bin:$PATH"
fi
command -v rlscale >/dev/null 2>&1 || { echo "demo.sh: rlscale not on PATH (run make install)" >&2; exit 1; }
PYTHON=$(dirname "$(command -v rlscale)")/python
[[ -x $PYTHON ]] || PYTHON=python3

# ---- study size ---------------------------------------------------------------------------
if ((QUICK)); then
    SIZES=(s1 s2 s3)      # smallest first
    PRETRAIN_STEPS=100
    STEPS=2               # GRPO steps per size (held-out eval at steps 0..STEPS)
    BATCH=16              # prompts per GRPO step
    GROUP=4               # samples per prompt (G), also per held-out prompt
    HOLDOUT=16
    REF_SAMPLES=4         # reference samples per problem for the difficulty estimate
    PROBE=50
    REUSE=()              # no reuse panel
    RL_SEEDS=()           # no second RL seed
else
    SIZES=(s1 s2 s3 s4)
    PRETRAIN_STEPS=400
    STEPS=10
    BATCH=32
    GROUP=8
    HOLDOUT=64
    REF_SAMPLES=8
    PROBE=200
    REUSE=(2 4 8 16)      # data reuse panel: tau > 1 for REUSE_SIZE (tau = 1 is its main run)
    REUSE_SIZE=s2
    # The RL runs once more with another seed (sampling, updates, bootstrap) on the same base
    # models and data: how far the result moves from run to run. (SEED + 1 is taken: it drew
    # the reference samples that rank the problems by difficulty.)
    RL_SEEDS=($((SEED + 100)))
fi
LR=1e-4                   # GRPO learning rate (AdamW): 1e-3 collapses these models, 2e-5 barely moves
MAX_TOKENS=32             # the longest worked solution (4 operands) + end of text is ~25 tokens
REF_SIZE=${SIZES[-1]}     # difficulty from the largest model, as the paper used Qwen2.5-7B's pass rates

# One thread per process: --jobs processes share the cores; no tokenizer thread pools.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
export MPLBACKEND=Agg

START=$SECONDS
log() { printf 'demo [%4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }

# for_each_size FUNC ITEM...: run FUNC ITEM for every item, at most $JOBS at a time (a new one
# starts as soon as one ends); fail after all have ended if any failed.
for_each_size() {
    local func=$1 size pid failed=0
    shift
    local -a running=() still=()
    local -A size_of=()
    reap() {  # collect the finished jobs among $running
        still=()
        local live
        live=" $(jobs -rp | tr '\n' ' ') "
        for pid in "${running[@]}"; do
            if [[ $live == *" $pid "* ]]; then
                still+=("$pid")
            elif ! wait "$pid"; then
                echo "demo.sh: $func ${size_of[$pid]} failed (see the messages above)" >&2
                failed=1
            fi
        done
        running=("${still[@]}")
    }
    for size in "$@"; do
        while reap; ((${#running[@]} >= JOBS)); do sleep 0.2; done
        "$func" "$size" &
        running+=("$!")
        size_of[$!]=$size
    done
    while reap; ((${#running[@]})); do sleep 0.2; done
    return "$failed"
}
# Largest first, so the longest job starts first and the small ones fill in around it.
SIZES_BY_COST=()
for ((i = ${#SIZES[@]} - 1; i >= 0; i--)); do SIZES_BY_COST+=("${SIZES[$i]}"); done

case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
rm -rf "$OUT"
mkdir -p "$OUT/models" "$OUT/runs" "$OUT/logs"
log "writing to $OUT ($( ((QUICK)) && echo quick || echo full ) study: sizes ${SIZES[*]}, $STEPS GRPO steps of $BATCH prompts x $GROUP samples, seed $SEED)"

# ---- 0. the real result first: the paper's own curves --------------------------------------
# Table 6's inter row (Qwen2.5 Base, C, fit on 0.5B-32B, 72B held out) and the Figure 1 plot,
# from the curves shipped with rlscale; a second or two, before the micro study starts.
rlscale fit --example paper-base --space linear --holdout-group 72e9 --plot "$OUT/paper-figure1.png" \
    -o "$OUT/paper-fit.json" 2> "$OUT/logs/paper-fit.log" || { cat "$OUT/logs/paper-fit.log" >&2; exit 1; }
"$PYTHON" -m rlscale.demo.paper "$OUT/paper-fit.json" | tee "$OUT/paper-table6.md"
echo
log "the paper's curves: $OUT/paper-table6.md, $OUT/paper-figure1.png; now the micro study"

# ---- 1. the task and the shared tokenizer -------------------------------------------------
N_PROBLEMS=$((STEPS * BATCH + HOLDOUT))
"$PYTHON" -m rlscale.demo.prepare task --out "$OUT" --n-problems "$N_PROBLEMS" --seed "$SEED"

# ---- 2. pretrain the base models ----------------------------------------------------------
pretrain_size() {
    "$PYTHON" -m rlscale.demo.prepare model --out "$OUT" --size "$1" --steps "$PRETRAIN_STEPS" \
        --seed "$SEED" --probe "$PROBE" > "$OUT/logs/pretrain-$1.json"
}
log "pretraining ${#SIZES[@]} base models ($PRETRAIN_STEPS steps each, $JOBS at a time)"
for_each_size pretrain_size "${SIZES_BY_COST[@]}"
for size in "${SIZES[@]}"; do cat "$OUT/logs/pretrain-$size.json"; done > "$OUT/pretrain.jsonl"

# ---- 3. difficulty from the reference model, curriculum and held-out split -----------------
log "measuring difficulty: $REF_SAMPLES samples per problem from $REF_SIZE"
rlscale rollout "$OUT/task.jsonl" --model "$OUT/models/$REF_SIZE" -n "$REF_SAMPLES" \
        --temperature 1.0 --max-tokens "$MAX_TOKENS" --no-chat-template --no-token-ids \
        --seed "$((SEED + 1))" --batch-size 256 --quiet \
    | rlscale reward --fallbacks none --quiet > "$OUT/reference-scored.jsonl"
rlscale curate "$OUT/task.jsonl" --pass-rates "$OUT/reference-scored.jsonl" --order curriculum \
        --holdout "$HOLDOUT" --holdout-out "$OUT/heldout.jsonl" --stratify easy-hard \
        --seed "$SEED" -o "$OUT/train.jsonl" 2> "$OUT/logs/curate.log" \
    || { cat "$OUT/logs/curate.log" >&2; exit 1; }
sed 's/^/  curate: /' "$OUT/logs/curate.log" >&2

# ---- 4. GRPO per size, with a held-out evaluation at every step ---------------------------
# Each run keeps two long-running stages, fed one batch at a time through named pipes
# (`--follow`: every end-of-stream record closes a batch, every answer ends with its own):
#   the sampler  rlscale rollout --follow | rlscale reward --follow   (the policy re-read per batch)
#   the trainer  rlscale grpo-step --follow                           (one GRPO step per batch)
# so torch and transformers are imported twice per run, not twice per step. Each step sends
# the sampler the next BATCH prompts of TRAIN_FILE together with the whole held-out split (the
# held-out records carry run_id, step and the tokens of the update that produced this policy,
# so `eval --by` keeps them and `flops` can add C); the scored held-out samples go to
# `rlscale eval`, the training samples to the trainer, and the next step starts only when the
# trainer has answered, i.e. when the updated policy is published.
# train_run RUN_ID SIZE TRAIN_FILE DIR [TAU]: a run of STEPS steps from base model SIZE.
source "$REPO/scripts/follow.sh"  # end_record, send_batch, one_answer
train_run() {
    local run=$1 size=$2 train=$3 dir=$4 tau=${5:-} tokens=0 s lo hi eval_pid seed=$RUN_SEED
    local policy="$dir/policy" base="$OUT/models/$2" fields by=run_id,step,n_tokens
    local sampler trainer to_sampler from_sampler to_trainer from_trainer
    mkdir -p "$dir"
    cp -r "$base" "$policy"
    [[ -z $tau ]] || by+=,tau
    mkfifo "$dir/sampler.in" "$dir/sampler.out" "$dir/trainer.in" "$dir/trainer.out"
    rlscale rollout --follow --model "$policy" -n "$GROUP" --temperature 1.0 --top-p 1.0 \
            --max-tokens "$MAX_TOKENS" --no-chat-template --seed "$seed" --batch-size 512 --quiet \
            < "$dir/sampler.in" \
        | rlscale reward --follow --fallbacks none --quiet > "$dir/sampler.out" &
    sampler=$!
    rlscale grpo-step --follow --policy "$policy" --ref "$base" --out "$policy" --lr "$LR" \
            --mini-batches 4 --micro-batch-size 128 --temperature 1.0 --seed "$seed" --quiet \
            < "$dir/trainer.in" > "$dir/trainer.out" &
    trainer=$!
    # in the order the stages open them (each open of a named pipe waits for the other end)
    exec {to_sampler}>"$dir/sampler.in" {from_sampler}<"$dir/sampler.out" \
         {to_trainer}>"$dir/trainer.in" {from_trainer}<"$dir/trainer.out"
    for ((s = 0; s <= STEPS; s++)); do
        lo=$((s * BATCH + 1)) hi=$(((s + 1) * BATCH))
        fields="\"run_id\":\"$run\",\"step\":$s,\"n_tokens\":$tokens,${tau:+\"tau\":$tau,}"
        {
            if ((s < STEPS)); then sed -n "${lo},${hi}{/^{\"rlscale_end\"/d;p}" "$train"; fi
            sed "/^{\"rlscale_end\"/d; s/^{/{$fields/" "$OUT/heldout.jsonl"
        } > "$dir/batch.jsonl"
        send_batch "$to_sampler" "$dir/batch.jsonl" \
            || { echo "demo.sh: $run: the sampler is gone at step $s" >&2; return 1; }
        one_answer "$(($(grep -c . "$dir/batch.jsonl") * GROUP))" "$dir/scored.jsonl" <&"$from_sampler" \
            || { echo "demo.sh: $run: the sampler stopped at step $s" >&2; return 1; }
        # Split the scored batch (complete: reward ended it) into the held-out samples, for
        # eval, and the training samples, for the trainer; each half is sent as a batch of its own.
        # Held-out: same per-sample seeds at every step (common random numbers across steps).
        grep -F '"split":"test"' "$dir/scored.jsonl" > "$dir/heldout-scored.jsonl"
        send_batch 1 "$dir/heldout-scored.jsonl" \
            | rlscale eval --by "$by" --k 1,"$GROUP" --seed "$seed" --quiet >> "$dir/eval.jsonl" &
        eval_pid=$!
        if ((s < STEPS)); then
            grep -vF -e '"split":"test"' -e '{"rlscale_end"' "$dir/scored.jsonl" > "$dir/train-scored.jsonl"
            send_batch "$to_trainer" "$dir/train-scored.jsonl" \
                || { echo "demo.sh: $run: the trainer is gone at step $((s + 1))" >&2; return 1; }
            one_answer 1 "$dir/step-metrics.jsonl" <&"$from_trainer" \
                || { echo "demo.sh: $run: the trainer stopped at step $((s + 1))" >&2; return 1; }
            cat "$dir/step-metrics.jsonl" >> "$dir/train-metrics.jsonl"
            tokens=$(grep -o '"n_tokens":[0-9]*' "$dir/step-metrics.jsonl" | cut -d: -f2)
            [[ -n $tokens ]] || { echo "demo.sh: grpo-step wrote no n_tokens for $run" >&2; return 1; }
        fi
        wait "$eval_pid"
        # Keep the first and last held-out samples (the report counts formatted answers in them).
        if ((s == 0 || s == STEPS)); then mv "$dir/heldout-scored.jsonl" "$dir/heldout-step$s.jsonl"; fi
        log "$run step $s/$STEPS: held-out $(grep -o '"pass@1":[0-9.e-]*' "$dir/eval.jsonl" | tail -n 1)"
    done
    exec {to_sampler}>&- {to_trainer}>&-  # end of input: both stages finish and exit
    wait "$sampler" || { echo "demo.sh: $run: the sampler failed" >&2; return 1; }
    wait "$trainer" || { echo "demo.sh: $run: the trainer failed" >&2; return 1; }
    exec {from_sampler}<&- {from_trainer}<&-
    # Compute: C = 6 N T with N = all parameters (every one of them is in a matmul here: the
    # embedding is tied to the output layer) and D = prompts consumed.
    rlscale flops "$dir/eval.jsonl" --model "$base" --n-def total --prompts-per-step "$BATCH" \
        --quiet > "$dir/runs.jsonl"
    rm -rf "$dir"/{scored,batch,heldout-scored,train-scored,step-metrics}.jsonl "$dir"/*.in "$dir"/*.out "$dir/policy"
}
# RUN_SEED: the seed of the RL runs (rollout, grpo-step, eval); SEED_OUT: where they go.
RUN_SEED=$SEED SEED_OUT=$OUT
train_size() { train_run "$1" "$1" "$OUT/train.jsonl" "$SEED_OUT/runs/$1"; }
log "GRPO: ${#SIZES[@]} sizes x $STEPS steps ($JOBS sizes at a time)"
for_each_size train_size "${SIZES_BY_COST[@]}"
for size in "${SIZES[@]}"; do cat "$OUT/runs/$size/runs.jsonl"; done > "$OUT/runs.jsonl"

# ---- 4b. data reuse: one size, the same number of steps, budget // tau unique prompts ------
if ((${#REUSE[@]})); then
    log "data reuse: $REUSE_SIZE at tau = ${REUSE[*]}, $STEPS steps each ($JOBS at a time)"
    mkdir -p "$OUT/reuse"
    reuse_run() {
        rlscale curate "$OUT/train.jsonl" --order keep --reuse "$1" --budget "$((STEPS * BATCH))" \
            --expand --seed "$SEED" -o "$OUT/reuse/train-tau$1.jsonl" 2> "$OUT/logs/reuse-tau$1.log" \
            || { cat "$OUT/logs/reuse-tau$1.log" >&2; return 1; }
        # One id per epoch: at tau = 16 an epoch (20 prompts) is shorter than a batch, and a
        # rollout refuses the same prompt_id twice in one input.
        sed -i -E 's/^\{"prompt_id":"([^"]*)"(.*"epoch":([0-9]+),)/{"prompt_id":"\1-e\3"\2/' \
            "$OUT/reuse/train-tau$1.jsonl"
        train_run "$REUSE_SIZE-tau$1" "$REUSE_SIZE" "$OUT/reuse/train-tau$1.jsonl" "$OUT/reuse/tau$1" "$1"
    }
    for_each_size reuse_run "${REUSE[@]}"
    # tau = 1 is the size's main run (the first STEPS x BATCH curriculum prompts, each once).
    {
        sed "/^{\"rlscale_end\"/d; s/^{/{\"tau\":1,/" "$OUT/runs/$REUSE_SIZE/runs.jsonl"
        for tau in "${REUSE[@]}"; do grep -v '^{"rlscale_end"' "$OUT/reuse/tau$tau/runs.jsonl"; done
    } > "$OUT/reuse/runs.jsonl"
fi

# ---- 4c. the RL runs again with another seed ---------------------------------------------
for RUN_SEED in "${RL_SEEDS[@]}"; do
    SEED_OUT=$OUT/seed$RUN_SEED
    log "GRPO again with RL seed $RUN_SEED: ${#SIZES[@]} sizes x $STEPS steps, same base models and data"
    for_each_size train_size "${SIZES_BY_COST[@]}"
    for size in "${SIZES[@]}"; do cat "$SEED_OUT/runs/$size/runs.jsonl"; done > "$SEED_OUT/runs.jsonl"
    rlscale fit "$SEED_OUT/runs.jsonl" --law saturating --bootstrap 200 --seed "$RUN_SEED" \
        -o "$SEED_OUT/fit.json" 2> "$OUT/logs/fit-seed$RUN_SEED.log" \
        && rlscale fit "$SEED_OUT/runs.jsonl" --law loglinear --bootstrap 200 --seed "$RUN_SEED" \
            -o "$SEED_OUT/fit-loglinear.json" 2>> "$OUT/logs/fit-seed$RUN_SEED.log" \
        || { cat "$OUT/logs/fit-seed$RUN_SEED.log" >&2; exit 1; }
done

# ---- 5. the scaling-law fit --------------------------------------------------------------
log "fitting the saturating law to $(grep -vc '^{"rlscale_end"' "$OUT/runs.jsonl") points"
rlscale fit "$OUT/runs.jsonl" --law saturating --plot "$OUT/demo.png" --bootstrap 200 --seed "$SEED" \
    -o "$OUT/fit.json" 2> "$OUT/logs/fit.log" || { cat "$OUT/logs/fit.log" >&2; exit 1; }
rlscale fit "$OUT/runs.jsonl" --law saturating --x D --seed "$SEED" -o "$OUT/fit-data.json" \
    2>> "$OUT/logs/fit.log" || { cat "$OUT/logs/fit.log" >&2; exit 1; }
rlscale fit "$OUT/runs.jsonl" --law loglinear --bootstrap 200 --seed "$SEED" -o "$OUT/fit-loglinear.json" \
    2>> "$OUT/logs/fit.log" || { cat "$OUT/logs/fit.log" >&2; exit 1; }
# Prediction: the largest size from the smaller ones, and the rest of each curve from its first 30%.
LARGEST_N=$(grep -o '"n_params":[0-9]*' "$OUT/pretrain.jsonl" | cut -d: -f2 | sort -n | tail -n 1)
rlscale fit "$OUT/runs.jsonl" --law saturating --holdout-group "$LARGEST_N" --seed "$SEED" \
    -o "$OUT/fit-holdout.json" 2>> "$OUT/logs/fit.log" || { cat "$OUT/logs/fit.log" >&2; exit 1; }
rlscale fit "$OUT/runs.jsonl" --law saturating --fit-fraction 0.3 --seed "$SEED" \
    -o "$OUT/fit-early.json" 2>> "$OUT/logs/fit.log" || { cat "$OUT/logs/fit.log" >&2; exit 1; }
if ((${#REUSE[@]})); then  # the reuse panel: loss against prompts D, one curve and slope per tau
    rlscale fit "$OUT/reuse/runs.jsonl" --law loglinear --x D --group tau --bootstrap 200 \
        --seed "$SEED" --plot "$OUT/reuse.png" -o "$OUT/fit-reuse.json" 2>> "$OUT/logs/fit.log" \
        || { cat "$OUT/logs/fit.log" >&2; exit 1; }
fi
sed 's/^/  /' "$OUT/logs/fit.log" >&2
"$PYTHON" -m rlscale.demo.report "$OUT" | tee "$OUT/summary.md"
log "done in $((SECONDS - START)) s: $OUT/runs.jsonl, $OUT/fit.json, $OUT/demo.png, $OUT/summary.md, $OUT/summary.json"
if ((QUICK)); then
    log "note: --quick checks that the pipeline runs; its models and runs are too small for the numbers to mean anything (run the full study for results)"
fi
