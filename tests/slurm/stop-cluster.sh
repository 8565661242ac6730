#!/usr/bin/env bash
# Stops what tests/slurm/start-cluster.sh started, by the PIDs it recorded.
set -uo pipefail
STATE_DIR=${1:-/tmp/mctformer-slurm}
[ -f "$STATE_DIR/pids" ] || exit 0
pids=$(tac "$STATE_DIR/pids")
for pid in $pids; do kill "$pid" 2>/dev/null; done
for _ in $(seq 50); do
    alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
done
for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
: >"$STATE_DIR/pids"
# put back what start-cluster.sh kept aside, else remove its files from /etc/slurm
for name in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "$STATE_DIR/$name.orig" ]; then
        mv "$STATE_DIR/$name.orig" "/etc/slurm/$name"
    elif grep -qxF "# written by tests/slurm/start-cluster.sh" "/etc/slurm/$name" 2>/dev/null; then
        rm -f "/etc/slurm/$name"
    fi
done
