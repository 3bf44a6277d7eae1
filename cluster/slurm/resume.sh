#!/usr/bin/env bash
# Resubmits a cut sweep (time limit, scancel, a failed node): the coordinator with --resume on the
# same journal — only the items without a result are queued again — and the worker array again.
#   cluster/slurm/resume.sh SHARED_FOLDER [WORKERS]
# The settings come from SHARED_FOLDER/submit.env (written by submit.sh); variables set in the
# environment win, e.g. ADAPTERMIX_TIME=2-0 cluster/slurm/resume.sh /shared/sweep1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${1:-${ADAPTERMIX_SHARED:-adaptermix-sweep}}
[ -r "$shared/submit.env" ] || { echo "error: no $shared/submit.env: give the shared folder submit.sh used" >&2; exit 2; }
[ $# -gt 1 ] && export ADAPTERMIX_WORKERS=$2
set -a   # export what submit.env sets: submit.sh and the jobs read it from the environment
# shellcheck disable=SC1091
. "$shared/submit.env"
set +a

# The previous jobs must be gone: two coordinators on one journal would both serve it.
if [ -r "$shared/jobs" ]; then
  live=""
  while IFS='=' read -r _ id; do   # one at a time: squeue rejects a list holding a purged id
    out=$(squeue -h -j "$id" -t PD,R,S,RQ,RH,CG,CF,RS -o '%i %T' 2>/dev/null || true)
    [ -z "$out" ] || live+="$out"$'\n'
  done < "$shared/jobs"
  if [ -n "$live" ]; then
    echo "error: jobs of this sweep are still in the queue:" >&2
    printf "%s" "$live" >&2
    echo "wait for them to end (squeue), or scancel them first" >&2
    exit 2
  fi
fi
exec "$here/submit.sh" --resume
