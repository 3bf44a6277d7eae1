#!/usr/bin/env bash
# Submits a sweep to Slurm: the coordinator (coordinator.sbatch), then the worker array
# (worker.sbatch), which starts once the coordinator has started.
#   cluster/slurm/submit.sh CONFIG [WORKERS]          # a new sweep
#   cluster/slurm/submit.sh --resume [CONFIG [WORKERS]]   # what resume.sh runs
# Settings (environment; see the two batch scripts for the ones they read):
#   ADAPTERMIX_SHARED       the shared folder: journal, endpoint file, logs/, submit.env (default ./adaptermix-sweep)
#   ADAPTERMIX_WORKERS      array size (default 2; or the second argument)
#   ADAPTERMIX_WORKER_CPUS  --cpus-per-task of each worker (default 4; the worker uses them all)
#   ADAPTERMIX_TIME         the coordinator's --time (default: the partition's); give the workers
#   ADAPTERMIX_WORKER_TIME  at least as long (default: the same)
#   ADAPTERMIX_SBATCH_ARGS  more sbatch flags for both jobs, e.g. "--partition=cpu --account=lab"
#   ADAPTERMIX_KEYS, ADAPTERMIX_BIND_ADDR, ADAPTERMIX_PORT, ADAPTERMIX_INSECURE, ADAPTERMIX_BIN,
#   ADAPTERMIX_COORDINATOR_ARGS, ADAPTERMIX_WORKER_ARGS, ADAPTERMIX_GIVE_UP: passed to the jobs.
# It records these settings in $ADAPTERMIX_SHARED/submit.env (resume.sh reads them back) and the
# job ids in $ADAPTERMIX_SHARED/jobs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

resume=0
if [ $# -gt 0 ] && [ "$1" = "--resume" ]; then resume=1; shift; fi
[ $# -gt 0 ] && ADAPTERMIX_CONFIG=$1
[ $# -gt 1 ] && ADAPTERMIX_WORKERS=$2
: "${ADAPTERMIX_CONFIG:?usage: submit.sh [--resume] CONFIG [WORKERS] (or set ADAPTERMIX_CONFIG)}"
[ -r "$ADAPTERMIX_CONFIG" ] || { echo "error: cannot read the config $ADAPTERMIX_CONFIG" >&2; exit 2; }
command -v sbatch > /dev/null || { echo "error: sbatch not found: run this on a Slurm login node" >&2; exit 2; }

abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
ADAPTERMIX_CONFIG=$(abs "$ADAPTERMIX_CONFIG")
ADAPTERMIX_SHARED=$(abs "${ADAPTERMIX_SHARED:-adaptermix-sweep}")
ADAPTERMIX_WORKERS=${ADAPTERMIX_WORKERS:-2}
ADAPTERMIX_WORKER_CPUS=${ADAPTERMIX_WORKER_CPUS:-4}
[ -z "${ADAPTERMIX_KEYS:-}" ] || ADAPTERMIX_KEYS=$(abs "$ADAPTERMIX_KEYS")
case "${ADAPTERMIX_BIN:-}" in */*) ADAPTERMIX_BIN=$(abs "$ADAPTERMIX_BIN") ;; esac
journal=${ADAPTERMIX_JOURNAL:-$ADAPTERMIX_SHARED/journal.sqlite}
if [ "$resume" = 1 ] && [ ! -e "$journal" ]; then
  echo "error: nothing to resume: no journal at $journal" >&2; exit 2
fi
if [ "$resume" = 0 ] && [ -e "$journal" ]; then
  echo "note: $journal exists: the coordinator reopens it (same plan: it goes on where it stopped; another plan: it refuses)"
fi

mkdir -p "$ADAPTERMIX_SHARED/logs"
rm -f "${ADAPTERMIX_ENDPOINT_FILE:-$ADAPTERMIX_SHARED/endpoint}"   # a stale one would send workers to a dead port
vars=(ADAPTERMIX_CONFIG ADAPTERMIX_SHARED ADAPTERMIX_JOURNAL ADAPTERMIX_ENDPOINT_FILE ADAPTERMIX_WORKERS
      ADAPTERMIX_WORKER_CPUS ADAPTERMIX_TIME ADAPTERMIX_WORKER_TIME ADAPTERMIX_SBATCH_ARGS ADAPTERMIX_KEYS
      ADAPTERMIX_BIND_ADDR ADAPTERMIX_PORT ADAPTERMIX_INSECURE ADAPTERMIX_BIN ADAPTERMIX_COORDINATOR_ARGS
      ADAPTERMIX_WORKER_ARGS ADAPTERMIX_GIVE_UP ADAPTERMIX_ENDPOINT_WAIT ADAPTERMIX_THREADS)
{
  echo "# written by submit.sh on $(date -Is); resume.sh reads it (variables set in its environment win)"
  for v in "${vars[@]}"; do
    # shellcheck disable=SC2016  # the line is written for resume.sh to evaluate
    if [ -n "${!v:-}" ]; then printf '[ -n "${%s+set}" ] || %s=%q\n' "$v" "$v" "${!v}"; export "${v?}"; fi
  done
} > "$ADAPTERMIX_SHARED/submit.env"
export ADAPTERMIX_RESUME=$resume

# shellcheck disable=SC2206  # word splitting of the extra flags is intended
common=(--parsable ${ADAPTERMIX_SBATCH_ARGS:-})
coordinator_time=(); [ -z "${ADAPTERMIX_TIME:-}" ] || coordinator_time=(--time="$ADAPTERMIX_TIME")
worker_time=${ADAPTERMIX_WORKER_TIME:-${ADAPTERMIX_TIME:-}}
worker_time_flag=(); [ -z "$worker_time" ] || worker_time_flag=(--time="$worker_time")

coordinator=$(sbatch "${common[@]}" "${coordinator_time[@]}" --output="$ADAPTERMIX_SHARED/logs/coordinator-%j.log" \
  "$here/coordinator.sbatch")
coordinator=${coordinator%%;*}
workers=$(sbatch "${common[@]}" "${worker_time_flag[@]}" --dependency="after:$coordinator" \
  --array="1-$ADAPTERMIX_WORKERS" --cpus-per-task="$ADAPTERMIX_WORKER_CPUS" \
  --output="$ADAPTERMIX_SHARED/logs/worker-%A_%a.log" "$here/worker.sbatch")
workers=${workers%%;*}
printf 'coordinator=%s\nworkers=%s\n' "$coordinator" "$workers" > "$ADAPTERMIX_SHARED/jobs"

echo "$([ "$resume" = 1 ] && echo resumed || echo submitted): coordinator job $coordinator, worker array $workers (1-$ADAPTERMIX_WORKERS × $ADAPTERMIX_WORKER_CPUS CPUs)"
echo "watch:  ${ADAPTERMIX_BIN:-adaptermix} status --journal $journal    (logs: $ADAPTERMIX_SHARED/logs/)"
echo "stop:   scancel $coordinator $workers    resume: $here/resume.sh $ADAPTERMIX_SHARED"
