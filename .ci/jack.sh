#!/usr/bin/env bash
# Start a JACK server with the dummy driver so tests get real PortAudio streams
# (host API "JACK Audio Connection Kit") and real MIDI ports on machines that
# have no sound card and no ALSA sequencer.
#
# Idempotent: if a server already answers, nothing is started. Exports nothing:
# tests detect JACK themselves (tests/conftest.py: `jack_server` fixture) and
# skip with a reason when it is absent.
#
# Usage (CI runs as root): bash .ci/jack.sh
# Env: JACK_RATE (48000), JACK_PERIOD (256), JACK_WAIT_S (10), JACK_LOG.
set -euo pipefail

rate="${JACK_RATE:-48000}"
period="${JACK_PERIOD:-256}"
wait_s="${JACK_WAIT_S:-10}"
log="${JACK_LOG:-${TMPDIR:-/tmp}/steerbridge-jackd.log}"

need_pkgs=()
command -v jackd >/dev/null 2>&1 || need_pkgs+=(jackd2)
# libportaudio2 is what python-sounddevice dlopens; jackd2 does not pull it.
ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || need_pkgs+=(libportaudio2)
if ((${#need_pkgs[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "jack.sh: missing ${need_pkgs[*]}; run as root or: sudo apt-get install -y ${need_pkgs[*]}" >&2
        exit 1
    fi
    echo "jack.sh: installing ${need_pkgs[*]}" >&2
    # jackd2's postinst asks about realtime priority; answer non-interactively.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi

# `jack_wait -c` exits 0 either way; it prints "running" or "not running".
jack_running() { [[ "$(jack_wait -c 2>/dev/null)" == running ]]; }

if jack_running; then
    echo "jack.sh: JACK already running" >&2
    exit 0
fi

# --no-realtime: CI containers cannot get SCHED_FIFO; the dummy driver keeps
# time with a timer, so streams still run at the real rate.
nohup jackd --no-realtime -d dummy -r "$rate" -p "$period" >"$log" 2>&1 &
jack_pid=$!

if ! timeout "$((wait_s + 2))" jack_wait -w -t "$wait_s" >/dev/null 2>&1 || ! jack_running; then
    echo "jack.sh: jackd (pid $jack_pid) did not come up within ${wait_s}s; log $log:" >&2
    tail -n 20 "$log" >&2 || true
    kill "$jack_pid" 2>/dev/null || true
    exit 1
fi
echo "jack.sh: jackd running (pid $jack_pid, ${rate} Hz, ${period}-frame periods, log $log)" >&2
