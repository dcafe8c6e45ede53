#!/usr/bin/env bash
# make soak: `lockscope agent` over many short windows while a containerd-shaped storm loop runs, its
# resident memory (VmRSS) sampled once a window; writes bench/soak.json with the least-squares slope of
# RSS per window after the first windows (docs/performance.md). A benchmark, not a test: run it when
# nothing else heavy runs.
#   LOCKSCOPE_SOAK_SECONDS (default 90)  LOCKSCOPE_SOAK_WINDOW (seconds, default 2)
#   LOCKSCOPE_SOAK_SKIP (windows left out of the slope, default 5)  LOCKSCOPE_SOAK_LOCKS (default mount)
#   LOCKSCOPE_SOAK_STORM (stress options, default below)  LOCKSCOPE_SOAK_AGENT (more agent options,
#   e.g. "--max-containers 10 --max-locks 20")
set -euo pipefail
bin=${1:-.build/release/lockscope}
seconds=${LOCKSCOPE_SOAK_SECONDS:-90}
window=${LOCKSCOPE_SOAK_WINDOW:-2}
skip=${LOCKSCOPE_SOAK_SKIP:-5}
locks=${LOCKSCOPE_SOAK_LOCKS:-mount}
read -r -a agent_options <<<"${LOCKSCOPE_SOAK_AGENT:-}"
read -r -a storm <<<"${LOCKSCOPE_SOAK_STORM:---runtime containerd --containers 24 --containers-per-pod 3 --layers 6 --parallel 4}"
out=bench/out/soak
if [ "$(id -u)" != 0 ]; then
  echo "make soak: loading BPF programs and mounting filesystems need root: run 'sudo make soak'" >&2
  exit 2
fi
[ -x "$bin" ] || { echo "make soak: $bin is missing: run 'make release' first" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out"/*
"$bin" agent --listen 127.0.0.1:0 --window "${window}s" --locks "$locks" --duration "${seconds}s" \
  --output-dir "$out" --keep 3 "${agent_options[@]}" 2>"$out/agent.err" &
agent=$!
storm_loop=
cleanup() {
  [ -n "$storm_loop" ] && kill "$storm_loop" 2>/dev/null || true
  kill "$agent" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
until grep -q "lockscope: attached" "$out/agent.err"; do
  kill -0 "$agent" 2>/dev/null || { cat "$out/agent.err" >&2; exit 1; }
  sleep 0.1
done
port=$(sed -n 's|.*serving http://127.0.0.1:\([0-9]*\).*|\1|p' "$out/agent.err")
# Series on /metrics (lines that are not comments): what the label caps bound.
series() {
  python3 -c 'import sys, urllib.request
print(sum(1 for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines() if line and not line.startswith("#")))' \
    "http://127.0.0.1:$port/metrics" 2>/dev/null || echo 0
}
# The storm loop, until the agent stops.
(
  runs=0
  while kill -0 "$agent" 2>/dev/null; do
    "$bin" stress "${storm[@]}" >/dev/null 2>>"$out/stress.err" || true
    runs=$((runs + 1))
    echo "$runs" >"$out/storm-runs"
  done
) &
storm_loop=$!
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s.%N)
: >"$out/rss.tsv"
window_index=0
while kill -0 "$agent" 2>/dev/null; do
  sleep "$window"
  window_index=$((window_index + 1))
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent/status" 2>/dev/null || true)
  [ -n "$rss" ] || break
  printf "%s\t%s\t%s\t%s\n" "$window_index" "$(awk -v now="$(date +%s.%N)" -v start="$start" "BEGIN { print now - start }")" \
    "$rss" "$(series)" >>"$out/rss.tsv"
done
wait "$agent"
status=$?
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
kill "$storm_loop" 2>/dev/null || true
wait "$storm_loop" 2>/dev/null || true
storm_loop=
[ "$status" = 0 ] || { echo "make soak: the agent exited $status:" >&2; cat "$out/agent.err" >&2; exit 1; }
python3 - "$out/rss.tsv" "$skip" "$window" "$seconds" "$locks" "$(cat "$out/storm-runs" 2>/dev/null || echo 0)" \
  "$load_start" "$load_end" "${storm[*]}" "${agent_options[*]}" <<'PY'
import json, sys
path, skip, window, seconds, locks, runs, load_start, load_end, storm, agent_options = sys.argv[1:]
rows = [line.split("\t") for line in open(path) if line.strip()]
samples = [{"window": int(w), "elapsed_s": round(float(t), 2), "rss_kb": int(r), "metric_series": int(n)} for w, t, r, n in rows]
kept = samples[int(skip):]
if len(kept) < 3:
    sys.exit(f"make soak: only {len(kept)} windows after the first {skip}: run longer (LOCKSCOPE_SOAK_SECONDS)")
n = len(kept)
xs = [s["window"] for s in kept]
ys = [s["rss_kb"] for s in kept]
mx, my = sum(xs) / n, sum(ys) / n
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
result = {
    "window_s": float(window), "duration_s": float(seconds), "locks": locks, "agent_options": agent_options, "storm": storm,
    "storm_runs": int(runs), "windows_sampled": len(samples), "windows_skipped": int(skip),
    "slope_kb_per_window": round(slope, 2),
    "rss_kb_first_kept": ys[0], "rss_kb_last": ys[-1], "rss_kb_max": max(ys), "rss_kb_min": min(ys),
    "metric_series_first_kept": kept[0]["metric_series"], "metric_series_last": kept[-1]["metric_series"],
    "loadavg_start": load_start, "loadavg_end": load_end,
    "samples": samples,
}
json.dump(result, open("bench/soak.json", "w"), indent=2)
open("bench/soak.json", "a").write("\n")
print(f"soak: {len(samples)} windows of {window} s, {runs} storms; RSS {ys[0]} -> {ys[-1]} KB after window {skip}, "
      f"slope {slope:.2f} KB per window (least squares, windows {xs[0]}-{xs[-1]}); metric series "
      f"{kept[0]['metric_series']} -> {kept[-1]['metric_series']}; load {load_start} -> {load_end}")
PY
