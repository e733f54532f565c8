#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for glmlab's Slurm tests and CI:
#
#   scripts/slurm_cluster.sh start|stop|status
#
# Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge), run as root. Config,
# state, spool, pid and log files live in $GLMLAB_SLURM_DIR (default /tmp/glmlab-slurm);
# Slurm's client commands find the cluster through SLURM_CONF=$GLMLAB_SLURM_DIR/slurm.conf.
# start and stop are idempotent; stop ends only the daemons that start started.
# Exit status: 0 ok; 1 status: not running; 2 this machine cannot run it (not root, not
# installed): the reason is on stderr, and tests skip with it; 3 it failed to start.
set -euo pipefail

DIR="${GLMLAB_SLURM_DIR:-/tmp/glmlab-slurm}"
CONF="$DIR/slurm.conf"
export SLURM_CONF="$CONF"
export PATH="$PATH:/usr/sbin:/sbin"
HOST="$(hostname -s)"

cannot() { echo "slurm_cluster: cannot run here: $*" >&2; exit 2; }
failed() {
    echo "slurm_cluster: $*" >&2
    tail -n 20 "$DIR"/*.log >&2 2>/dev/null || true
    exit 3
}

# Poll (up to $1 seconds) until the command after it succeeds.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

munge_works() { munge -n | unmunge; }
node_ready() { sinfo -h -n "$HOST" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid PIDFILE: TERM, then KILL after 10 s
    pid_alive "$1" || { rm -f "$1"; return 0; }
    local pid
    pid="$(cat "$1")"
    kill "$pid"
    wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    rm -f "$1"
}

check_machine() {
    [ "$(id -u)" = 0 ] || cannot "needs root (munged runs as munge, slurmd as root)"
    local b
    for b in slurmctld slurmd sinfo scontrol munged munge unmunge; do
        command -v "$b" >/dev/null || cannot "'$b' not found: apt-get install -y slurm-wlm munge"
    done
}

start_munge() {
    munge_works >/dev/null 2>&1 && return 0
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    su -s /bin/sh munge -c munged
    touch "$DIR/munged.ours"  # so that stop ends it, and only it
    wait_for 10 munge_works || failed "munged did not start (see /var/log/munge/munged.log)"
}

write_config() {
    # The node as slurmd sees it (CPUs, sockets, cores, RealMemory), so that Slurm never
    # marks it invalid; jobs must ask for less (cpus_per_task, mem_gb).
    local node
    node="$(slurmd -C | head -n 1)"
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh: a one-node cluster for tests.
ClusterName=glmlab
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups in containers: track processes by parent pid, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs that ask for no memory take 512 MB a CPU, not the whole node: they run side by side.
DefMemPerCPU=512
# No slurmdbd: finished jobs' states (TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...) go to a text
# file instead, which glmlab's status reads (glmlab/cluster/slurm.py).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
# Arrays above this are split by glmlab submit (kept small here so that tests split them).
MaxArraySize=${GLMLAB_SLURM_MAX_ARRAY_SIZE:-100}
# Fast for tests: SIGKILL 3 s after SIGTERM, a requeued job may start again within seconds,
# and the scheduler looks at pending jobs every few seconds.
KillWait=3
AuthInfo=cred_expire=5
SchedulerParameters=bf_interval=1,sched_interval=2
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    check_machine
    if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && node_ready; then
        echo "slurm_cluster: already running (SLURM_CONF=$CONF)"
        return 0
    fi
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    mkdir -p "$DIR"
    start_munge
    write_config
    # -c: a scratch cluster starts with no jobs left over from an earlier one.
    slurmctld -c -f "$CONF" || failed "slurmctld did not start"
    wait_for 20 scontrol ping || failed "slurmctld does not answer"
    slurmd -f "$CONF" || failed "slurmd did not start"
    if ! wait_for 20 node_ready; then
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        wait_for 10 node_ready || failed "node $HOST is not up: $(sinfo -h -N -o '%T %E')"
    fi
    echo "slurm_cluster: running (SLURM_CONF=$CONF)"
}

stop() {
    if pid_alive "$DIR/slurmctld.pid"; then
        scancel --full --quiet -u root 2>/dev/null || true
    fi
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    if [ -f "$DIR/munged.ours" ]; then
        stop_pid /run/munge/munged.pid
        rm -f "$DIR/munged.ours"
    fi
    echo "slurm_cluster: stopped"
}

status() {
    if pid_alive "$DIR/slurmctld.pid" && node_ready; then
        echo "slurm_cluster: running (SLURM_CONF=$CONF)"
        sinfo
        return 0
    fi
    echo "slurm_cluster: not running"
    return 1
}

case "${1:-}" in
start | stop | status) "$1" ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 64
    ;;
esac
