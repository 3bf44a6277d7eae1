# Sourced by bench/textfooler.sh and bench/sweep.sh: the peers' virtualenv bench/.venv-textattack,
# (re)installed from bench/requirements-textattack.txt when it is missing or the pins changed.
# Sets VENV. Never used by CI.
peer_venv() {
  VENV=bench/.venv-textattack
  local reqs=bench/requirements-textattack.txt stamp=bench/.venv-textattack/.requirements.sha256 want
  want=$(sha256sum "$reqs" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing the peers into $VENV (pinned in $reqs; a few minutes) ..."
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$stamp"
  fi
}
