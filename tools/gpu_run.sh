#!/usr/bin/env bash
# Runs the CLI on an offline GPU machine (the lent NVIDIA H200 here). Before the call, on a
# machine with network, from the project root:
#   bash ../shared/gpu/pack.sh                      # .gpu/: deno, the Vulkan loader
#   DENO_DIR=$PWD/.gpu_npm deno cache --node-modules-dir=none --no-lock cli/main.ts
#   rm -rf .gpu_npm/npm/registry.npmjs.org/{webgpu,@webgpu}   # Dawn is not needed for --backend deno
# then ship the tree with .gpu/ and .gpu_npm/ and run, on the GPU machine:
#   source .gpu/boot.sh && bash tools/gpu_run.sh bench --all --json out.json
set -uo pipefail
export DENO_DIR="$PWD/.gpu_npm" XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} NO_COLOR=1
exec deno run -A --node-modules-dir=none --cached-only --no-lock cli/main.ts "$@"
