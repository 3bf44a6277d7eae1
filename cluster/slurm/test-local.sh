#!/usr/bin/env bash
# The Slurm launch scripts on a real single-node Slurm (Debian's slurm-wlm and munge): a sweep is
# submitted with submit.sh, cut (the coordinator gets the SIGTERM that --signal=B:TERM@120 sends
# before a time limit, the worker array is scancel'ed), resumed with resume.sh, its coordinator
# killed and requeued like after a node failure, and finished; then every item must be recorded
# once and the aggregates must equal an uninterrupted local run's.
#   bash cluster/slurm/test-local.sh              # BIN=/path/to/adaptermix to test another build
# Needs root and apt-get: installs slurm-wlm and munge when slurmctld is missing; where it cannot,
# it prints one line saying why it skipped and exits 0. Everything else lives in one mktemp -d
# folder (munge key and socket, slurm.conf, state, spool, logs; ports 16817/16818 or the next free
# pair, on loopback), and every daemon it starts is stopped on exit. KEEP=1 keeps the folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BIN=${BIN:-$repo/.build/debug/adaptermix}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
CTLD_PORT=${CTLD_PORT:-16817}   # the next free pair from here is taken (two runs at once do not collide)
DELAY_MS=${DELAY_MS:-800}     # per shard: 40 shards on 2 workers last about 16 s
export PATH="$PATH:/usr/sbin:/sbin"

skip() { echo "slurm test skipped: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "not root (it installs slurm-wlm and munge and runs their daemons as root)"
[ -x "$BIN" ] || { echo "FAIL: no adaptermix binary at $BIN: build it first (swift build) or set BIN" >&2; exit 1; }

# 1. Slurm and munge, from Debian's packages when missing.
missing() { for c in slurmctld slurmd munged sbatch; do command -v "$c" > /dev/null || return 0; done; return 1; }
install_s=0
if missing; then
  command -v apt-get > /dev/null || skip "Slurm is not installed and apt-get is unavailable"
  t0=$SECONDS
  apt_log=$(mktemp)
  install() { DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends slurm-wlm munge >> "$apt_log" 2>&1; }
  if ! install; then
    timeout 300 apt-get update >> "$apt_log" 2>&1 || true   # a fresh machine has no package lists yet
    if ! install; then
      why=$(grep -E '^(E|W):' "$apt_log" | tail -n 1); rm -f "$apt_log"
      skip "apt-get install slurm-wlm munge failed (${why:-see apt-get})"
    fi
  fi
  rm -f "$apt_log"
  missing && skip "slurm-wlm and munge installed, but slurmctld, slurmd, munged or sbatch is still missing"
  install_s=$((SECONDS - t0))
fi

# 2. A private munge and a one-node Slurm, all under $T.
T=$(mktemp -d /tmp/adaptermix-slurm.XXXXXX)
chmod 755 "$T"   # munged wants its socket's folders searchable by all; the key's folder stays private
mkdir -p "$T/munge" "$T/munge-socket" "$T/state" "$T/spool" "$T/log" "$T/run" "$T/work" "$T/shared"
chmod 700 "$T/munge"
export SLURM_CONF=$T/slurm.conf
munged_pid="" ctld_pid="" slurmd_pid=""
t_start=$SECONDS

stop_pid() {  # pid: TERM, then KILL after 10 s
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  set +e
  if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
    timeout 10 scancel --user=root > /dev/null 2>&1
    for _ in $(seq 100); do
      [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  # What the jobs started runs in $T/work: anything still there is this test's.
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in "$T"/*) kill -KILL "${d#/proc/}" 2>/dev/null ;; esac
  done
  stop_pid "$slurmd_pid"; stop_pid "$ctld_pid"; stop_pid "$munged_pid"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dump_logs() {
  if [ -f "$SLURM_CONF" ]; then
    echo "---- squeue / sinfo"
    timeout 5 squeue -a 2>&1; timeout 5 sinfo 2>&1
  fi
  for f in "$T"/log/* "$T"/shared/logs/*; do
    [ -f "$f" ] || continue
    echo "---- $f"; tail -n 40 "$f"
  done
}
fail() { echo "FAIL: $*"; dump_logs; exit 1; }
field() { grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }
aggregates() { grep -o '"aggregates":\[[^]]*\]'; }
# Items recorded so far in journal $1 (0 before it exists).
recorded() { timeout 10 "$BIN" status --journal "$1" --format json 2>/dev/null | field results || echo 0; }
# Waits up to $1 s for the command after it to succeed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.5; done
}

key=$T/munge/munge.key
if command -v mungekey > /dev/null; then
  mungekey --create --keyfile="$key" > /dev/null
else
  dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
fi
chmod 400 "$key"
socket=$T/munge-socket/munge.socket
munged --foreground --key-file="$key" --socket="$socket" --pid-file="$T/run/munged.pid" \
  --log-file="$T/log/munged.log" --seed-file="$T/munge/munge.seed" > "$T/log/munged.out" 2>&1 &
munged_pid=$!
munge_ok() { munge -n -S "$socket" 2>/dev/null | unmunge -S "$socket" > /dev/null 2>&1; }
wait_for 10 munge_ok || fail "munged did not answer on $socket"

# shellcheck disable=SC2016  # $0 belongs to the inner shell
in_use() { timeout 2 bash -c 'exec 3<> "/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
while in_use "$CTLD_PORT" || in_use $((CTLD_PORT + 1)); do CTLD_PORT=$((CTLD_PORT + 2)); done
SLURMD_PORT=$((CTLD_PORT + 1))
cpus=$(nproc)
[ "$cpus" -ge 4 ] || cpus=4   # coordinator + 2 workers; config_overrides lets slurmd take more CPUs than it has
cat > "$SLURM_CONF" <<CONF
ClusterName=adaptermix-test
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/run/slurmctld.pid
SlurmdPidFile=$T/run/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -f "$SLURM_CONF" > "$T/log/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -f "$SLURM_CONF" -N localhost > "$T/log/slurmd.out" 2>&1 &
slurmd_pid=$!
node_idle() { [ "$(timeout 5 sinfo -h -n localhost -o %t 2>/dev/null)" = idle ]; }
wait_for 30 node_idle || fail "the node did not become idle"
slurm_s=$((SECONDS - t_start))

# 3. The reference: the same plan, uninterrupted, on this machine.
cat > "$T/sweep.yaml" <<'YAML'
base_model: /nonexistent/model          # the no-op evaluator reads no model, adapters or data
domains: [sms-spam, election-tweets, rotten-tomatoes, bbc-news, food-reviews]
adapters: {method: pfeiffer, dir: /nonexistent/adapters}
conditions: [clean]
shard_size: 2
YAML
timeout 120 "$BIN" sweep --evaluator noop --config "$T/sweep.yaml" --workers 2 --journal "$T/ref.sqlite" \
  --progress-interval 0 --format json > "$T/log/reference.json" 2> "$T/log/reference.log" \
  || fail "the reference sweep failed"
timeout 10 "$BIN" status --journal "$T/ref.sqlite" --format json > "$T/ref-status.json"
total=$(field total < "$T/ref-status.json")
[ "$(field results < "$T/ref-status.json")" = "$total" ] || fail "the reference sweep did not record all $total items"
timeout 10 "$BIN" keys generate --out "$T/keys" --workers 2 > /dev/null || fail "adaptermix keys generate failed"

# 4. Submit, as a user would (CURVE on loopback: the key flags are exercised, nothing leaves the machine).
export ADAPTERMIX_BIN=$BIN ADAPTERMIX_SHARED=$T/shared ADAPTERMIX_BIND_ADDR=127.0.0.1 ADAPTERMIX_KEYS=$T/keys
export ADAPTERMIX_WORKER_CPUS=1 ADAPTERMIX_TIME=10 ADAPTERMIX_GIVE_UP=20 ADAPTERMIX_ENDPOINT_WAIT=120
export ADAPTERMIX_COORDINATOR_ARGS="--evaluator noop --heartbeat-interval 0.5 --progress-interval 2"
export ADAPTERMIX_WORKER_ARGS="--delay-ms $DELAY_MS"
journal=$T/shared/journal.sqlite
jobs_of() { coordinator=$(sed -n 's/^coordinator=//p' "$T/shared/jobs"); workers=$(sed -n 's/^workers=//p' "$T/shared/jobs"); }
job_gone() { [ -z "$(timeout 5 squeue -h -j "$1" -o %i 2>/dev/null)" ]; }
job_field() { timeout 5 scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -n 1 | cut -d= -f2; }
t_sweep=$SECONDS
(cd "$T/work" && timeout 30 bash "$here/submit.sh" "$T/sweep.yaml" 2) > "$T/log/submit.out" 2>&1 \
  || fail "submit.sh failed: $(cat "$T/log/submit.out")"
jobs_of
some() { [ "$(recorded "$journal")" -ge "$1" ]; }
wait_for 60 some 8 || fail "no results recorded 60 s after submitting"
# The README's way to watch: status on the coordinator's node, inside its allocation.
watched=$(timeout 30 srun --jobid="$coordinator" --overlap "$BIN" status --journal "$journal" --format json 2> "$T/log/srun.err" | field total || true)
[ "$watched" = "$total" ] || fail "srun --jobid=$coordinator --overlap adaptermix status did not work: $(cat "$T/log/srun.err")"
if (cd "$T/work" && timeout 30 bash "$here/resume.sh" "$T/shared") > "$T/log/resume-early.out" 2>&1; then
  fail "resume.sh submitted a second coordinator while the first still runs"
fi

# 5. The cut: the time-limit signal to the coordinator's batch script, the worker array cancelled.
timeout 10 scancel --batch --signal=TERM "$coordinator"
timeout 10 scancel "$workers"
wait_for 60 job_gone "$coordinator" || fail "the coordinator job $coordinator did not end after SIGTERM"
wait_for 60 job_gone "$workers" || fail "the worker array $workers did not end after scancel"
code=$(job_field "$coordinator" ExitCode)
[ "$code" = "130:0" ] || fail "the stopped coordinator's job ended with ExitCode=$code, not 130:0"
cut=$(recorded "$journal")
if [ "$cut" -eq 0 ] || [ "$cut" -ge "$total" ]; then fail "after the cut the journal holds $cut of $total results"; fi
first=$coordinator

# 6. Resume; midway, kill the coordinator like a node failure (no bye to the workers) and requeue it
#    once the workers have noticed it is gone: the worker tasks wait and follow it to its new endpoint.
(cd "$T/work" && timeout 30 bash "$here/resume.sh" "$T/shared") > "$T/log/resume.out" 2>&1 \
  || fail "resume.sh failed: $(cat "$T/log/resume.out")"
jobs_of
[ "$coordinator" != "$first" ] || fail "resume.sh did not submit a new coordinator"
wait_for 60 some $((cut + 12)) || fail "the resumed sweep recorded nothing new in 60 s"
timeout 10 scancel --batch --signal=KILL "$coordinator"
ended() { case "$(job_field "$coordinator" JobState)" in RUNNING|COMPLETING|"") return 1 ;; esac; }
wait_for 30 ended || fail "the coordinator job $coordinator did not end after SIGKILL"
killed_at=$(recorded "$journal")
waiting() { [ "$(cat "$T"/shared/logs/worker-"$workers"_*.log | grep -c "nothing listens")" -ge 2 ]; }
wait_for 60 waiting || true   # a worker that keeps reconnecting is followed on the new endpoint instead
sleep 2   # slurmd refuses to launch a job whose credential is as old as its kill (1 s resolution)
timeout 10 scontrol requeue "$coordinator" || fail "scontrol requeue $coordinator failed"
timeout 10 scontrol update jobid="$coordinator" StartTime=now || true   # else a requeued job waits ~2 minutes
wait_for 120 job_gone "$coordinator" || fail "the requeued coordinator $coordinator did not finish in 120 s"
wait_for 60 job_gone "$workers" || fail "the worker array $workers did not end after the sweep finished"
sweep_s=$((SECONDS - t_sweep))

# 7. Checks.
timeout 10 "$BIN" status --journal "$journal" --format json > "$T/final.json" || fail "status on $journal failed"
ok=1
check() { local what=$1; shift; "$@" || { echo "FAIL: $what"; ok=0; }; }
code=$(job_field "$coordinator" ExitCode)
check "the requeued coordinator ended with ExitCode=$code, not 0:0" [ "$code" = "0:0" ]
check "$(field "done" < "$T/final.json") of $total items done" [ "$(field "done" < "$T/final.json")" = "$total" ]
check "$(field results < "$T/final.json") result rows for $total items" [ "$(field results < "$T/final.json")" = "$total" ]
check "$(field failed < "$T/final.json") items failed" [ "$(field failed < "$T/final.json")" = 0 ]
check "the aggregates differ from the uninterrupted run's" \
  [ "$(aggregates < "$T/final.json")" = "$(aggregates < "$T/ref-status.json")" ]
log=$T/shared/logs/coordinator-$coordinator.log
check "$log does not hold both runs of the requeued job (--open-mode=append)" \
  [ "$(grep -c "^== .* coordinator job $coordinator " "$log" 2>/dev/null)" -ge 2 ]
check "no worker exited 0" grep -q "exited 0" "$T"/shared/logs/worker-"$workers"_*.log
quit=$(cat "$T"/shared/logs/worker-"$workers"_*.log | grep -c "nothing listens" || true)
moved=$(cat "$T"/shared/logs/worker-"$workers"_*.log | grep -c "coordinator moved" || true)
check "the workers did not follow the requeued coordinator" [ $((quit + moved)) -ge 2 ]
[ "$ok" = 1 ] || { dump_logs; exit 1; }
printf "slurm: %s items, 2 array workers · cut at %s (coordinator SIGTERM: exit 130, workers cancelled) · resume.sh · coordinator SIGKILLed at %s and requeued, followed by the workers (%s after their worker quit, %s restarted on the new endpoint) · every item recorded once, aggregates equal the local run's · install %d s, slurm up %d s, jobs %d s\n" \
  "$total" "$cut" "$killed_at" "$quit" "$moved" "$install_s" "$slurm_s" "$sweep_s"
