#!/usr/bin/env bash
# The GPU proof in one command (tools/gpu_check.py says what it runs): on one CUDA GPU, about 8 minutes, one table
# at the end. Without a GPU it says so in one line and exits 0; --dry_run runs its steps on the CPU at toy sizes.
#   bash tools/gpu_check.sh [--dry_run] [--budget_s=480] [--out=DIR]
cd "$(dirname "$0")/.." && exec python tools/gpu_check.py "$@"
