#!/usr/bin/env bash
# Screenshot of the real Pygame window under Xvfb: docs/make_screenshot.sh ENV OUT.png [extra play args]
# Needs Debian's xvfb and imagemagick (apt-get install xvfb imagemagick).
set -euo pipefail
env_name=${1:-MsPacman}; out=${2:-docs/play-${env_name}.png}; shift 2 || true
Xvfb :97 -screen 0 1280x1024x24 >/dev/null 2>&1 & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
sleep 1
DISPLAY=:97 vmask-live play --env "$env_name" --fps 15 --max-steps 400 --seed 1 "$@" & play=$!
sleep "${SHOT_AFTER:-12}"
win=$(DISPLAY=:97 xwininfo -name vmask-live | awk '/Window id/ {print $4}')
DISPLAY=:97 import -window "$win" "$out"
kill $play 2>/dev/null || true
echo "wrote $out"
