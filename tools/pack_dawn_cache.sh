#!/usr/bin/env bash
# Fills .gpu_dawn/ (git-ignored): an offline Deno cache with every npm dependency of the CLI and
# the tuning scripts, Dawn (npm `webgpu`) included but only its linux-x64 addon, xz-compressed so
# the tree plus .gpu/ stays under the device tool's 64 MiB. Run from the project root on a machine
# with network; on the GPU machine `tools/gpu_run.sh` unpacks the addon on first use.
set -euo pipefail
rm -rf .gpu_dawn
DENO_DIR="$PWD/.gpu_dawn" deno cache --node-modules-dir=none --no-lock \
  cli/main.ts kernels/mma/tune.ts kernels/flash/tune.ts kernels/decode/tune.ts
dist=$(echo .gpu_dawn/npm/registry.npmjs.org/webgpu/*/dist)
find "$dist" -mindepth 1 -maxdepth 1 -type d ! -name linux-x64 -exec rm -rf {} +
xz -T0 -6 "$dist/linux-x64/dawn.node"
rm -rf .gpu_dawn/gen  # transpiled sources: rebuilt there in seconds, kept out of the 64 MiB
du -sh .gpu_dawn
