#!/usr/bin/env bash
# make demo: record the built-in container-start mount storm twice, idmapping every layer
# (per-layer, what containerd does) and idmapping the layers' common parent once (common-parent),
# and print the two side by side: lock waits, container set-up latency, mount ops per container.
set -euo pipefail
bin=${1:-.build/release/lockscope}
out=${LOCKSCOPE_DEMO_DIR:-demo}
containers=${LOCKSCOPE_DEMO_CONTAINERS:-200}
layers=${LOCKSCOPE_DEMO_LAYERS:-50}

if [ "$(id -u)" != 0 ]; then
  echo "make demo: recording kernel locks and mounting filesystems need root: run 'sudo make demo'" >&2
  exit 2
fi
mkdir -p "$out"
for strategy in per-layer common-parent; do
  echo "== recording lockscope stress --strategy $strategy ($containers containers x $layers layers, 16 at a time)"
  "$bin" record -o "$out/$strategy.json" --quiet --no-report -- \
    "$bin" stress --strategy "$strategy" --containers "$containers" --layers "$layers" --parallel 16 | tee "$out/$strategy.stress.txt"
  echo
done

echo "== per-layer: the report"
"$bin" report "$out/per-layer.json" --top 8 --mounts
echo
echo "== common-parent (baseline) against per-layer: lock waits side by side"
"$bin" diff "$out/common-parent.json" "$out/per-layer.json" || true
echo
echo "profiles and stress summaries are in $out/; flame graph: $bin flamegraph $out/per-layer.json -o $out/per-layer.svg"
