#!/usr/bin/env bash
# make bench: measure lockscope on this machine and write bench/results.json (docs/performance.md).
#   1. overhead: the same `lockscope stress` mount storm, timed alone, under `lockscope record`
#      (default --locks mount, and --locks all), under `perf lock record -a`, and under a bpftrace
#      script doing the same aggregation; interleaved rounds, order rotated each round;
#   2. BPF cost: with BPF run-time statistics on, one more run under lockscope (each --locks mode) and
#      under two minimal bpftrace scripts (references), each tool's programs' run time against the
#      workload's own CPU time (user + sys) in that same run;
#   3. lockscope-bench: ingest and ceiling rates, memory, start-up; then the results and a summary.
# Needs root. Installs perf and bpftrace with apt-get when they are missing.
set -euo pipefail
shopt -s inherit_errexit
bin=${1:-.build/release/lockscope}
bench_bin=$(dirname "$bin")/lockscope-bench
rounds=${LOCKSCOPE_BENCH_ROUNDS:-10}
# LOCKSCOPE_BENCH_STORM replaces the storm's options, e.g. "--containers 200 --layers 50 --parallel 16".
read -r -a storm <<<"${LOCKSCOPE_BENCH_STORM:---containers 100 --layers 30 --parallel 16}"
workload=(stress "${storm[@]}")
out=bench/out
tools=(alone lockscope lockscope-all perf bpftrace)

if [ "$(id -u)" != 0 ]; then
  echo "make bench: loading BPF programs and mounting filesystems need root: run 'sudo make bench'" >&2
  exit 2
fi
for program in "$bin" "$bench_bin"; do
  [ -x "$program" ] || { echo "make bench: $program is missing: run 'make release' first" >&2; exit 2; }
done
missing=()
command -v perf >/dev/null || missing+=(linux-perf)
command -v bpftrace >/dev/null || missing+=(bpftrace)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# perf lock and bpftrace's tracepoints read lock:contention_begin/end through tracefs.
if [ ! -d /sys/kernel/tracing/events/lock ]; then
  mount -t tracefs nodev /sys/kernel/tracing
fi
mkdir -p "$out"
rm -f "$out"/overhead.tsv "$out"/record-runs.tsv

# Per-lock wait histograms, and per lock: by begin stack, by CPU, by cgroup (lockscope's breakdowns).
cat > "$out/lockscope.bt" <<'EOF'
BEGIN { printf("lockscope.bt: attached\n"); }
tracepoint:lock:contention_begin {
  @start[tid, args->lock_addr] = nsecs;
  @begin_stack[tid, args->lock_addr] = kstack;
}
tracepoint:lock:contention_end /@start[tid, args->lock_addr]/ {
  $wait = nsecs - @start[tid, args->lock_addr];
  @wait_ns[args->lock_addr] = hist($wait);
  @by_stack[args->lock_addr, @begin_stack[tid, args->lock_addr]] = stats($wait);
  @by_cpu[args->lock_addr, cpu] = stats($wait);
  @by_cgroup[args->lock_addr, cgroup] = stats($wait);
  delete(@start[tid, args->lock_addr]);
  delete(@begin_stack[tid, args->lock_addr]);
}
EOF

now_ms() { local t=$EPOCHREALTIME; echo "${t/./}" | awk '{ printf "%.3f", $1 / 1000 }'; }

# Waits (up to 30 s) until FILE contains TEXT.
wait_for_text() {
  local file=$1 text=$2
  for _ in $(seq 300); do
    grep -q "$text" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "make bench: timed out waiting for '$text' in $file" >&2
  cat "$file" >&2
  return 1
}

# Waits until PID's child has exec'ed COMMAND (perf starts its workload once its events are enabled).
wait_for_child() {
  local pid=$1 command=$2
  for _ in $(seq 300); do
    for child in $(pgrep -P "$pid"); do
      [ "$(cat /proc/"$child"/comm 2>/dev/null)" = "$command" ] && return 0
    done
    sleep 0.1
  done
  echo "make bench: timed out waiting for $command under pid $pid" >&2
  return 1
}

# Runs the workload once and prints its wall time in ms.
timed_workload() {
  local start end
  start=$(now_ms)
  "$bin" "${workload[@]}" >/dev/null
  end=$(now_ms)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

# Runs the workload once under TOOL (started first and attached, stopped after) and prints its wall
# time; for lockscope, also appends its peak RSS, events and drops to record-runs.tsv.
run_under() {
  local tool=$1 round=$2 pid child ms
  case $tool in
    alone)
      timed_workload
      return ;;
    lockscope|lockscope-all)
      local locks=mount
      [ "$tool" = lockscope-all ] && locks=all
      /usr/bin/time -f %M -o "$out/$tool.maxrss" \
        "$bin" record --locks "$locks" --quiet --no-report -o "$out/$tool.json" 2>"$out/$tool.err" &
      pid=$!
      wait_for_text "$out/$tool.err" "lockscope: attached"
      ms=$(timed_workload)
      child=$(pgrep -P "$pid")
      kill -INT "$child"
      wait "$pid"
      printf '%s\t%s\t%s\t%s\n' "$tool" "$round" "$(cat "$out/$tool.maxrss")" \
        "$(jq -r '"\(.events)\t\(.dropped)"' "$out/$tool.json")" >>"$out/record-runs.tsv" ;;
    perf)
      perf lock record -a -o "$out/perf.data" -- sleep 600 >"$out/perf.err" 2>&1 &
      pid=$!
      wait_for_child "$pid" sleep
      ms=$(timed_workload)
      kill -INT "$pid"
      wait "$pid" || true
      rm -f "$out/perf.data" ;;
    bpftrace)
      bpftrace "$out/lockscope.bt" >"$out/bpftrace.out" 2>&1 &
      pid=$!
      wait_for_text "$out/bpftrace.out" "lockscope.bt: attached"
      ms=$(timed_workload)
      kill -INT "$pid"
      wait "$pid" || true ;;
  esac
  echo "$ms"
}

echo "== overhead: lockscope ${workload[*]}, $rounds interleaved rounds of: ${tools[*]}"
timed_workload >/dev/null # warm up: page cache, cgroup and mount machinery
for round in $(seq "$rounds"); do
  line="round $round:"
  for i in "${!tools[@]}"; do
    tool=${tools[$(((i + round) % ${#tools[@]}))]}
    ms=$(run_under "$tool" "$round")
    printf '%s\t%s\t%s\n' "$tool" "$round" "$ms" >>"$out/overhead.tsv"
    line+=" $tool ${ms} ms"
  done
  echo "$line"
done

# BPF cost: one more workload run under each of lockscope (default --locks mount, and --locks all) and
# two bpftrace references, with BPF run-time statistics on. Each run writes, per BPF program of the
# tool, its runs and run time during the workload (bpftool, before and after), with the workload's wall
# time and its own CPU time: user + sys of the storm and every process it started and reaped (bash's
# `time`, from getrusage(RUSAGE_CHILDREN), in ms). lockscope-bench divides the one by the other.
# Lines: tool<TAB>program<TAB>runs<TAB>run_ns<TAB>wall_ms<TAB>user_ms<TAB>sys_ms.

# Reference (a): start time per (tid, lock) at begin, a histogram of the wait at end.
cat > "$out/minimal.bt" <<'EOF'
BEGIN { printf("minimal.bt: attached\n"); }
tracepoint:lock:contention_begin { @start[tid, args->lock_addr] = nsecs; }
tracepoint:lock:contention_end /@start[tid, args->lock_addr]/ {
  @wait_ns = hist(nsecs - @start[tid, args->lock_addr]);
  delete(@start[tid, args->lock_addr]);
}
EOF
# Reference (b): the same, keeping the kernel stack of each wait's begin and a histogram per stack.
cat > "$out/kstack.bt" <<'EOF'
BEGIN { printf("kstack.bt: attached\n"); }
tracepoint:lock:contention_begin {
  @start[tid, args->lock_addr] = nsecs;
  @stack[tid, args->lock_addr] = kstack;
}
tracepoint:lock:contention_end /@start[tid, args->lock_addr]/ {
  @wait_ns[@stack[tid, args->lock_addr]] = hist(nsecs - @start[tid, args->lock_addr]);
  delete(@start[tid, args->lock_addr]);
  delete(@stack[tid, args->lock_addr]);
}
EOF

# Runs the workload once and prints "wall_ms user_ms sys_ms": its wall time, and the CPU time of it
# and of all its reaped descendants (bash's time keyword reads getrusage(RUSAGE_CHILDREN)).
cpu_timed_workload() {
  local TIMEFORMAT='%3R %3U %3S' usage
  usage=$( { time "$bin" "${workload[@]}" >/dev/null 2>"$out/workload.err"; } 2>&1 )
  echo "$usage" | awk '{ printf "%.3f %.3f %.3f", $1 * 1000, $2 * 1000, $3 * 1000 }'
}

# The ids of the BPF programs process PID holds open.
program_ids() {
  { grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null || true; } | awk '{ print $2 }' | sort -un
}

# name<TAB>run_cnt<TAB>run_time_ns of each program in IDS.
program_stats() {
  local id
  for id in $1; do
    bpftool prog show id "$id" -j | jq -r '"\(.name)\t\(.run_cnt // 0)\t\(.run_time_ns // 0)"'
  done
}

# Appends TOOL's lines to bpf-cost.tsv for one workload run; PID is the tool, already attached.
measure_bpf_cost() {
  local tool=$1 pid=$2 ids usage wall user sys
  ids=$(program_ids "$pid")
  [ -n "$ids" ] || { echo "make bench: $tool (pid $pid) holds no BPF programs" >&2; return 1; }
  program_stats "$ids" >"$out/bpf-before.tsv"
  usage=$(cpu_timed_workload)
  read -r wall user sys <<<"$usage"
  program_stats "$ids" >"$out/bpf-after.tsv"
  paste "$out/bpf-before.tsv" "$out/bpf-after.tsv" |
    awk -F'\t' -v tool="$tool" -v wall="$wall" -v user="$user" -v sys="$sys" \
      '{ printf "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\n", tool, $1, $5 - $2, $6 - $3, wall, user, sys }' >>"$out/bpf-cost.tsv"
  echo "  $tool: workload ${wall} ms wall, ${user} ms user + ${sys} ms sys"
}

echo "== BPF cost: programs' run time (bpf_stats) against the workload's own CPU time, one run per tool"
rm -f "$out/bpf-cost.tsv"
stats_were=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -q kernel.bpf_stats_enabled="$stats_were"' EXIT
sysctl -q kernel.bpf_stats_enabled=1
for locks in mount all; do
  tool=lockscope
  [ "$locks" = all ] && tool=lockscope-all
  "$bin" record --locks "$locks" --quiet --no-report -o "$out/bpf-cost-$tool.json" 2>"$out/bpf-cost-$tool.err" &
  pid=$!
  wait_for_text "$out/bpf-cost-$tool.err" "lockscope: attached"
  measure_bpf_cost "$tool" "$pid"
  kill -INT "$pid"
  wait "$pid"
done
if command -v bpftrace >/dev/null; then
  for reference in minimal kstack; do
    bpftrace "$out/$reference.bt" >"$out/bpftrace-$reference.out" 2>&1 &
    pid=$!
    wait_for_text "$out/bpftrace-$reference.out" "$reference.bt: attached"
    measure_bpf_cost "bpftrace-$reference" "$pid"
    kill -INT "$pid"
    wait "$pid" || true
  done
fi
sysctl -q kernel.bpf_stats_enabled="$stats_were"
trap - EXIT
cat "$out/bpf-cost.tsv"

# The on-CPU sampler at the default --spin-hz: its program's run time over the workload's own CPU time
# (user + system of the storm and its workers) in the same run.
echo "== on-CPU sampler: run time during one more workload run, against the workload's CPU time"
sysctl -q kernel.bpf_stats_enabled=1
"$bin" record --quiet --no-report -o "$out/spin-cost.json" 2>"$out/spin-cost.err" &
pid=$!
wait_for_text "$out/spin-cost.err" "lockscope: attached"
spin_id=$(for id in $({ grep -h '^prog_id:' /proc/"$pid"/fdinfo/* 2>/dev/null || true; } | awk '{ print $2 }' | sort -u); do
  bpftool prog show id "$id" -j | jq -r 'select(.name == "spin_sample") | .id'
done)
spin_stats() { bpftool prog show id "$spin_id" -j | jq -r '"\(.run_cnt // 0)\t\(.run_time_ns // 0)"'; }
before=$(spin_stats)
/usr/bin/time -f '%e\t%U\t%S' -o "$out/spin-cost.time" "$bin" "${workload[@]}" >/dev/null
after=$(spin_stats)
kill -INT "$pid"
wait "$pid"
sysctl -q kernel.bpf_stats_enabled="$stats_were"
hz=$(jq -r '.cpu_samples.hz' "$out/spin-cost.json")
paste <(echo "$before") <(echo "$after") "$out/spin-cost.time" |
  awk -F'\t' -v hz="$hz" '{ printf "%d\t%d\t%d\t%.1f\t%.1f\n", hz, $3 - $1, $4 - $2, ($6 + $7) * 1000, $5 * 1000 }' >"$out/spin-cost.tsv"
cat "$out/spin-cost.tsv"

echo "== lockscope-bench: start-up, memory, ingest and ceiling"
"$bench_bin" --lockscope "$bin" --overhead "$out/overhead.tsv" --record-runs "$out/record-runs.tsv" \
  --bpf-cost "$out/bpf-cost.tsv" --spin-cost "$out/spin-cost.tsv" --workload "lockscope ${workload[*]}" --output bench/results.json
