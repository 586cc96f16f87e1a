#!/usr/bin/env bash
# Runs the CLI (or, with --script FILE, a tuning script) on an offline GPU machine (the lent
# NVIDIA H200 here). Before the call, on a machine with network, from the project root:
#   bash ../shared/gpu/pack.sh          # .gpu/: deno, the Vulkan loader
#   bash tools/pack_dawn_cache.sh       # .gpu_dawn/: npm dependencies, Dawn's linux-x64 addon
# then ship the tree with carry [".gpu", ".gpu_dawn"] and run, on the GPU machine:
#   source .gpu/boot.sh && bash tools/gpu_run.sh bench --all --json $OUT/out.json
#   source .gpu/boot.sh && bash tools/gpu_run.sh --script kernels/mma/tune.ts --perf-only
#   for i in $(seq 1 14); do bash tools/gpu_run.sh verify --all --shard $i/14 --json part$i.json & done; wait
#   (then, anywhere: deno run -A tools/merge_verify.ts --out all.json part*.json)
# (.gpu_npm/, an older cache without Dawn, still works when .gpu_dawn/ is absent.)
set -uo pipefail
cache="$PWD/.gpu_dawn"
[ -d "$cache" ] || cache="$PWD/.gpu_npm"
# Unpacked through a temporary name and renamed: processes started side by side (verify --shard)
# never load a half-written addon, and the last rename simply wins.
for xzf in "$cache"/npm/registry.npmjs.org/webgpu/*/dist/linux-x64/dawn.node.xz; do
  if [ -f "$xzf" ] && [ ! -f "${xzf%.xz}" ]; then
    tmp="${xzf%.xz}.$$.tmp"
    { xz -dc "$xzf" > "$tmp" && mv -f "$tmp" "${xzf%.xz}"; } || rm -f "$tmp"
  fi
done
export DENO_DIR="$cache" XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp} NO_COLOR=1
entry=cli/main.ts
if [ "${1:-}" = "--script" ]; then
  entry=$2
  shift 2
fi
exec deno run -A --node-modules-dir=none --cached-only --no-lock "$entry" "$@"
