#!/bin/bash
# slurm-cluster.sh start|stop|env DIR: a single-node Slurm cluster on this machine, all state under DIR.
#
#   start  installs Debian's slurm-wlm and munge when missing (as root), writes a munge key and a
#          slurm.conf for this host and its cores into DIR, starts munged, slurmctld and slurmd (their own
#          socket, ports and pid files: nothing under /etc or /run is used), and waits until the node is idle.
#          Exit status 3 (with the reason on stderr) when Slurm cannot be installed or started here.
#   stop   stops the three daemons started by `start` for DIR.
#   env    prints the environment the client commands need (`eval "$(slurm-cluster.sh env DIR)"`).
#
# The live test (scripts/slurm-test.sh) and anyone trying pipelines/slurm/ on a laptop use it.
set -euo pipefail
cmd=${1:?usage: slurm-cluster.sh start|stop|env DIR}
dir=$(mkdir -p "${2:?usage: slurm-cluster.sh start|stop|env DIR}" && cd "$2" && pwd)
conf=$dir/slurm.conf
socket=$dir/munge/munge.socket

cannot() { echo "slurm-cluster: cannot start Slurm here: $*" >&2; exit 3; }

case $cmd in
env)
    echo "export SLURM_CONF=$conf"
    exit 0
    ;;
stop)
    for p in slurmd slurmctld munged; do
        [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
    done
    sleep 1
    for p in slurmd slurmctld munged; do
        [ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
        rm -f "$dir/$p.pid"
    done
    exit 0
    ;;
start) ;;
*) echo "usage: slurm-cluster.sh start|stop|env DIR" >&2; exit 64 ;;
esac

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || cannot "slurm-wlm and munge are not installed and this is not root (apt-get install slurm-wlm munge)"
    echo "slurm-cluster: installing slurm-wlm and munge" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$dir/apt.log" 2>&1 \
        || cannot "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
fi
[ "$(id -u)" = 0 ] || cannot "slurmd must run as root to start jobs as their user; run as root"

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir/munge"
# Two free ports above the default ones, so a site's own Slurm is never disturbed.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
ctld_port=$(port); d_port=$(port)
[ -f "$dir/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$dir/munge/munge.key"; chmod 400 "$dir/munge/munge.key"; }

cat > "$conf" <<EOF
# Written by scripts/slurm-cluster.sh: one node ($host, $cpus CPUs), state in $dir.
ClusterName=ld
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ld Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

munged --force --socket="$socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" 2>"$dir/log/munged.err" \
    || cannot "munged did not start ($(head -c 300 "$dir/log/munged.err"))"
export SLURM_CONF=$conf
slurmctld -f "$conf" 2>"$dir/log/slurmctld.err" || cannot "slurmctld did not start ($(tail -c 300 "$dir/log/slurmctld.log" 2>/dev/null))"
slurmd -f "$conf" 2>"$dir/log/slurmd.err" || cannot "slurmd did not start ($(tail -c 300 "$dir/log/slurmd.log" 2>/dev/null))"
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    case $state in idle*) echo "slurm-cluster: $host up with $cpus CPUs ($conf)" >&2; exit 0 ;; esac
    sleep 0.5
done
cannot "the node did not become idle (state '${state:-none}'; logs in $dir/log)"
