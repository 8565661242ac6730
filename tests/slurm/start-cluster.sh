#!/usr/bin/env bash
# A real one-node SLURM cluster on this host, for the SLURM integration test.
#
#   tests/slurm/start-cluster.sh [STATE_DIR]    (default /tmp/mctformer-slurm)
#
# Installs Debian's munge/slurmctld/slurmd/slurm-client (and, for job
# accounting, slurmdbd + mariadb-server) when missing (needs root and apt),
# writes slurm.conf, gres.conf and slurmdbd.conf for this host, starts munged,
# MariaDB, slurmdbd, slurmctld and slurmd without systemd and waits until the
# node is idle. Accounting is on unless SLURM_ACCOUNTING=0: sacct then works as
# on a production cluster, which is what the executor plugin queries by default. Prints `export SLURM_CONF=...` for the clients; the PIDs of what it
# started go to STATE_DIR/pids, which tests/slurm/stop-cluster.sh kills.
# The node advertises one fake GPU (gres.conf maps it to /dev/null) so that
# the GPU requests of the rules are exercised on a CPU-only machine.
set -euo pipefail

STATE_DIR=${1:-/tmp/mctformer-slurm}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
log() { echo "[start-cluster] $*" >&2; }
started=$(date +%s.%N)

ACCOUNTING=${SLURM_ACCOUNTING:-1}
needed=(slurmctld slurmd sbatch munged)
packages=(slurmctld slurmd slurm-client munge)
if [ "$ACCOUNTING" = 1 ]; then
    needed+=(slurmdbd mariadbd mariadb-install-db)
    packages+=(slurmdbd mariadb-server)
fi
missing=0
for command in "${needed[@]}"; do command -v "$command" >/dev/null || missing=1; done
if [ $missing = 1 ]; then
    [ "$(id -u)" = 0 ] || { log "SLURM is not installed and installing it needs root"; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${packages[*]}"
    apt-get install -y -q --no-install-recommends "${packages[@]}" >"$STATE_DIR/apt.log" 2>&1 \
        || { apt-get update -q >>"$STATE_DIR/apt.log" 2>&1 && apt-get install -y -q --no-install-recommends "${packages[@]}" >>"$STATE_DIR/apt.log" 2>&1; } \
        || { cat "$STATE_DIR/apt.log" >&2; exit 1; }
fi

if [ -s "$STATE_DIR/pids" ]; then
    log "a cluster from $STATE_DIR/pids may still run; stopping it first"
    "$(dirname "$0")/stop-cluster.sh" "$STATE_DIR"
fi
: >"$STATE_DIR/pids"
mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/munge"

# munge: a key of our own and a socket in STATE_DIR, so a system munged is left alone
MUNGE_KEY="$STATE_DIR/munge/munge.key"
MUNGE_SOCKET="$STATE_DIR/munge/munge.socket"
if [ ! -s "$MUNGE_KEY" ]; then
    dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
fi
chmod 700 "$STATE_DIR/munge"
chmod 400 "$MUNGE_KEY"
munged --force --key-file "$MUNGE_KEY" --socket "$MUNGE_SOCKET" \
    --pid-file "$STATE_DIR/munge/munged.pid" --log-file "$STATE_DIR/munge/munged.log" --seed-file "$STATE_DIR/munge/munged.seed"
for _ in $(seq 50); do [ -s "$STATE_DIR/munge/munged.pid" ] && break; sleep 0.1; done
cat "$STATE_DIR/munge/munged.pid" >>"$STATE_DIR/pids"

host=$(hostname -s)
# slurmd -C describes this machine (CPUs, sockets, cores, memory); keep 1 GiB for the system
node_line=$(slurmd -C | head -1)
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
node_line=$(sed "s/NodeName=[^ ]*/NodeName=$host/; s/RealMemory=[0-9]*/RealMemory=$((memory > 2048 ? memory - 1024 : memory))/" <<<"$node_line")
MARKER="# written by tests/slurm/start-cluster.sh"
DBD_PORT=${SLURMDBD_PORT:-6819}
DB_PORT=${MARIADB_PORT:-3307}
if [ "$ACCOUNTING" = 1 ]; then
    accounting_lines="JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStoreFlags=job_comment
AccountingStorageTRES=gres/gpu
AccountingStorageHost=$host
AccountingStoragePort=$DBD_PORT
# the munge socket for slurmdbd connections (AuthInfo covers only the cluster's own)
AccountingStoragePass=$MUNGE_SOCKET"
else
    accounting_lines="JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none"
fi
cat >"$STATE_DIR/slurm.conf" <<CONF
$MARKER
ClusterName=mctformer-test
SlurmctldHost=$host
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
$accounting_lines
# Without accounting the executor asks squeue, which shows a finished job for
# MinJobAge seconds (the plugin wants >= 3x its first status interval).
MinJobAge=600
GresTypes=gpu
$node_line Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
printf '%s\nName=gpu File=/dev/null\n' "$MARKER" >"$STATE_DIR/gres.conf"
config_files=(slurm.conf gres.conf)
if [ "$ACCOUNTING" = 1 ]; then
    DB_PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    cat >"$STATE_DIR/slurmdbd.conf" <<CONF
$MARKER
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$host
DbdPort=$DBD_PORT
SlurmUser=$(id -un)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
PidFile=$STATE_DIR/slurmdbd.pid
LogFile=$STATE_DIR/slurmdbd.log
CONF
    chmod 600 "$STATE_DIR/slurmdbd.conf"
    config_files+=(slurmdbd.conf)
fi
# Also at the compiled-in path: the executor plugin's job steps drop SLURM_*
# variables (SLURM_CONF included) before their nested srun, which then looks
# there. A slurm.conf already there that is not ours is kept aside and put
# back by stop-cluster.sh.
SYSTEM_CONF_DIR=/etc/slurm
mkdir -p "$SYSTEM_CONF_DIR"
for name in "${config_files[@]}"; do
    if [ -e "$SYSTEM_CONF_DIR/$name" ] && ! grep -qxF "$MARKER" "$SYSTEM_CONF_DIR/$name" 2>/dev/null \
        && [ ! -e "$STATE_DIR/$name.orig" ]; then
        mv "$SYSTEM_CONF_DIR/$name" "$STATE_DIR/$name.orig"
    fi
    cp -p "$STATE_DIR/$name" "$SYSTEM_CONF_DIR/$name"
done
export SLURM_CONF="$SYSTEM_CONF_DIR/slurm.conf"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "$what did not come up in ${seconds} s; logs in $STATE_DIR"
    tail -20 "$STATE_DIR"/*.log >&2 || true
    "$(dirname "$0")/stop-cluster.sh" "$STATE_DIR"
    exit 1
}

if [ "$ACCOUNTING" = 1 ]; then
    # MariaDB in STATE_DIR on a TCP port of its own (a system MariaDB is left alone)
    if [ ! -d "$STATE_DIR/mysql/mysql" ]; then
        mariadb-install-db --user="$(id -un)" --datadir="$STATE_DIR/mysql" --auth-root-authentication-method=normal \
            --skip-test-db >"$STATE_DIR/mariadb-install.log" 2>&1 || { cat "$STATE_DIR/mariadb-install.log" >&2; exit 1; }
    fi
    mariadbd --no-defaults --user="$(id -un)" --datadir="$STATE_DIR/mysql" --socket="$STATE_DIR/mysql.sock" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$STATE_DIR/mysql.pid" --log-error="$STATE_DIR/mariadb.log" \
        --innodb-buffer-pool-size=64M >"$STATE_DIR/mariadbd.out" 2>&1 &
    echo $! >>"$STATE_DIR/pids"
    wait_for 60 MariaDB mariadb --no-defaults --socket="$STATE_DIR/mysql.sock" -uroot -e "select 1"
    mariadb --no-defaults --socket="$STATE_DIR/mysql.sock" -uroot -e "
        CREATE USER IF NOT EXISTS 'slurm'@'%' IDENTIFIED BY '$DB_PASSWORD';
        ALTER USER 'slurm'@'%' IDENTIFIED BY '$DB_PASSWORD';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';"
    slurmdbd -D >"$STATE_DIR/slurmdbd.out" 2>&1 &
    echo $! >>"$STATE_DIR/pids"
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster mctformer-test >/dev/null 2>&1 || true
fi

slurmctld -D -i -f "$SLURM_CONF" >"$STATE_DIR/slurmctld.out" 2>&1 &
echo $! >>"$STATE_DIR/pids"
slurmd -D -f "$SLURM_CONF" >"$STATE_DIR/slurmd.out" 2>&1 &
echo $! >>"$STATE_DIR/pids"

for _ in $(seq 300); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && break
    sleep 0.1
done
if [ "${state:-}" != idle ]; then
    log "the node did not become idle (state '${state:-none}'); logs in $STATE_DIR"
    tail -20 "$STATE_DIR/slurmctld.log" "$STATE_DIR/slurmd.log" >&2 || true
    "$(dirname "$0")/stop-cluster.sh" "$STATE_DIR"
    exit 1
fi
log "node $host idle after $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
echo "export SLURM_CONF=$SLURM_CONF"
