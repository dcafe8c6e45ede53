# Sourced by check-flamegraph-svg.sh and check-timeline-svg.sh: loads an SVG that carries a self-test
# script in headless Chromium, offline, and reports the line the self-test wrote into the document
# (`<text id="lockscope-selftest">LOCKSCOPE-SELFTEST PASS ...` or `... FAIL ...`).
#
# chromium_selftest NAME SVG SELFTEST_SVG WORK WIDTH HEIGHT [SCREENSHOT]
#   NAME prefixes every message; SVG is the file checked, SELFTEST_SVG its copy with the self-test,
#   WORK a scratch directory; WIDTH x HEIGHT the window of the optional screenshot of SVG itself.
# Exits 1 when Chromium fails, the self-test does not run, or it reports a failure.

chromium_selftest() {
    local name=$1 svg=$2 selftest=$3 work=$4 width=$5 height=$6 screenshot=${7:-}
    local browser
    browser=$(command -v chromium || true)
    [ -n "$browser" ] || { echo "$name: chromium not found; install it with: apt-get install -y chromium" >&2; exit 2; }
    # Every host name resolves to nothing: the page cannot fetch anything.
    local chrome=("$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions
                  --host-resolver-rules="MAP * ~NOTFOUND" --virtual-time-budget=10000)
    local started result elapsed_ms elapsed
    started=$(date +%s%N)
    if ! timeout 120 "${chrome[@]}" --dump-dom "file://$selftest" >"$work/dom.xml" 2>"$work/chromium.log"; then
        echo "$name: FAIL chromium did not render $svg:" >&2
        tail -n 20 "$work/chromium.log" >&2
        exit 1
    fi
    result=$(grep -o 'id="lockscope-selftest">[^<]*' "$work/dom.xml" | sed 's/^[^>]*>//' || true)
    elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
    elapsed="$((elapsed_ms / 1000)).$(( (elapsed_ms % 1000) / 100 ))"
    case "$result" in
        "LOCKSCOPE-SELFTEST PASS "*)
            echo "$name: PASS $svg: ${result#LOCKSCOPE-SELFTEST PASS } in Chromium (${elapsed}s)" ;;
        "")
            echo "$name: FAIL the self-test did not run in Chromium (script error?); log:" >&2
            tail -n 20 "$work/chromium.log" >&2
            exit 1 ;;
        *)
            echo "$name: FAIL $svg: ${result#LOCKSCOPE-SELFTEST FAIL }" >&2
            exit 1 ;;
    esac
    if [ -n "$screenshot" ]; then
        timeout 120 "${chrome[@]}" --window-size="$width,$height" --screenshot="$screenshot" "file://$(realpath "$svg")" \
            >/dev/null 2>>"$work/chromium.log"
        echo "$name: screenshot in $screenshot"
    fi
}
