#!/usr/bin/env bash
# Install prefect-rar into ./.venv and the local models into the model cache.
# torch goes first, pinned to the CPU build; llama-cpp-python is built without -march=native,
# which crashes in decode on some CPUs. Set RAR_MODELS to choose which models to install.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
. .venv/bin/activate

pip install --quiet --upgrade pip
pip install --quiet "torch==2.13.0"
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
pip install --quiet -e ".[test]"

models="${RAR_MODELS:-qwen2.5-0.5b,qwen2.5-1.5b,smollm2-135m}"
rar setup --models "$models"
