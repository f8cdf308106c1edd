#!/usr/bin/env bash
# Installs what ccgw needs to run and to be tested into the git-ignored .tools/ folder:
#   --cli     the pinned Claude Code CLI   (.tools/cli)
#   --python  the Python test environment  (.tools/venv, from tests/python/requirements.txt)
#   --node    the Node test clients        (tests/node/node_modules, from its package-lock.json)
#   --console the web console: its npm packages (web/node_modules) and its build (web/dist,
#             embedded in the binary by the next cargo build)
#   --browser Debian's chromium and firefox-esr for the console tests (apt-get, when missing)
#   --sandbox Debian's bubblewrap and socat, which the Bash sandbox needs (apt-get, when missing)
#   --postgres Debian's postgresql server binaries, which the Postgres store tests start on a
#             loopback port of their own (apt-get, when missing; no cluster is created)
#   --all     all of them (the default when no option is given)
# Idempotent: each part is skipped when it is already in place.
# CCGW_TOOLS_DIR overrides the .tools/ location (absolute path), CCGW_PYTHON the Python used for the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLI_PACKAGE="@anthropic-ai/claude-code"
CLI_VERSION="2.1.197"
TOOLS_DIR="${CCGW_TOOLS_DIR:-$ROOT/.tools}"
CLI_PREFIX="$TOOLS_DIR/cli"
CLI_BIN="$CLI_PREFIX/node_modules/.bin/claude"
CLI_PKG_DIR="$CLI_PREFIX/node_modules/$CLI_PACKAGE"
VENV="$TOOLS_DIR/venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
NODE_TESTS="$ROOT/tests/node"
NODE_STAMP="$NODE_TESTS/node_modules/.ccgw-lock.sha256"
STAMP="$VENV/.ccgw-requirements.sha256"
PYTHON="${CCGW_PYTHON:-python3}"

log() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

usage() {
  echo "usage: scripts/setup.sh [--cli] [--python] [--node] [--console] [--browser] [--sandbox] [--postgres] [--all]"
}

want_cli=0
want_python=0
want_node=0
want_console=0
want_browser=0
want_sandbox=0
want_postgres=0
for arg in "$@"; do
  case "$arg" in
    --cli) want_cli=1 ;;
    --python) want_python=1 ;;
    --node) want_node=1 ;;
    --console) want_console=1 ;;
    --browser) want_browser=1 ;;
    --sandbox) want_sandbox=1 ;;
    --postgres) want_postgres=1 ;;
    --all) want_cli=1; want_python=1; want_node=1; want_console=1; want_browser=1; want_sandbox=1; want_postgres=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $arg" ;;
  esac
done
if [[ $want_cli -eq 0 && $want_python -eq 0 && $want_node -eq 0 && $want_console -eq 0 && $want_browser -eq 0 && $want_sandbox -eq 0 && $want_postgres -eq 0 ]]; then
  want_postgres=1
  want_sandbox=1
  want_cli=1
  want_python=1
  want_node=1
  want_console=1
  want_browser=1
fi

mkdir -p "$TOOLS_DIR"

# One setup at a time per tools folder (a second caller waits, then finds everything in place).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS_DIR/.setup.lock"
  if ! flock -n 9; then
    log "another setup is running on $TOOLS_DIR; waiting for it"
    flock 9
  fi
fi

# Prints the CLI's version line, or nothing when the binary is missing, a placeholder, or broken.
cli_version() {
  [[ -x "$CLI_BIN" ]] || return 0
  timeout 60 "$CLI_BIN" --version 2>/dev/null | head -n 1 || true
}

cli_ok() {
  local v
  v="$(cli_version)"
  [[ "$v" == "$CLI_VERSION" || "$v" == "$CLI_VERSION "* ]]
}

setup_cli() {
  if cli_ok; then
    log "Claude Code CLI $CLI_VERSION already installed ($CLI_BIN)"
    return 0
  fi
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 18+ and npm, then re-run"
  local current
  current="$(cli_version)"
  log "installing Claude Code CLI $CLI_VERSION into $CLI_PREFIX${current:+ (found: $current)}"
  mkdir -p "$CLI_PREFIX"
  npm install --prefix "$CLI_PREFIX" --no-audit --no-fund --save-exact "$CLI_PACKAGE@$CLI_VERSION" \
    || die "npm install of $CLI_PACKAGE@$CLI_VERSION failed"
  if cli_ok; then
    log "Claude Code CLI $(cli_version) ready"
    return 0
  fi
  # The package ships a placeholder bin/claude.exe that its postinstall (install.cjs) replaces
  # with the platform's native binary; npm may have skipped install scripts.
  [[ -f "$CLI_PKG_DIR/install.cjs" ]] \
    || die "$CLI_PKG_DIR/install.cjs not found after npm install; the CLI package looks incomplete"
  log "CLI binary is still the placeholder; running the package's install.cjs"
  (cd "$CLI_PKG_DIR" && node install.cjs) || die "node install.cjs failed in $CLI_PKG_DIR"
  if cli_ok; then
    log "Claude Code CLI $(cli_version) ready"
    return 0
  fi
  die "Claude Code CLI is not usable: '$CLI_BIN --version' printed '$(cli_version)', expected $CLI_VERSION.
  The native package for this platform (e.g. $CLI_PACKAGE-linux-x64) may be missing:
  check that npm does not omit optional dependencies, then remove $CLI_PREFIX and re-run."
}

requirements_hash() {
  { cat "$REQUIREMENTS"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

setup_python() {
  [[ -f "$REQUIREMENTS" ]] || die "$REQUIREMENTS not found"
  if [[ -e "$VENV" ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "removing broken venv $VENV"
    rm -rf "$VENV"
  fi
  if [[ ! -e "$VENV" ]]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.9+ (or set CCGW_PYTHON)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
      || die "$PYTHON is older than 3.9"
    log "creating venv $VENV ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV" || die "could not create venv (Debian: apt-get install python3-venv)"
  fi
  local want
  want="$(requirements_hash)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    log "Python test requirements already installed ($VENV)"
    return 0
  fi
  log "installing tests/python/requirements.txt into $VENV"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -q -r "$REQUIREMENTS" \
    || die "pip install -r tests/python/requirements.txt failed"
  echo "$want" >"$STAMP"
  log "Python test requirements ready"
}

setup_node() {
  [[ -f "$NODE_TESTS/package-lock.json" ]] || die "$NODE_TESTS/package-lock.json not found"
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20+ and npm, then re-run"
  local want
  want="$({ cat "$NODE_TESTS/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$NODE_STAMP" && "$(cat "$NODE_STAMP")" == "$want" ]]; then
    log "Node test clients already installed ($NODE_TESTS/node_modules)"
    return 0
  fi
  log "installing the Node test clients (tests/node/package-lock.json)"
  (cd "$NODE_TESTS" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci in tests/node failed"
  echo "$want" >"$NODE_STAMP"
  log "Node test clients ready"
}

WEB="$ROOT/web"
WEB_STAMP="$WEB/node_modules/.ccgw-lock.sha256"

# The console: npm packages from the lockfile, then a build when the sources changed.
setup_console() {
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20+ and npm, then re-run"
  local want
  want="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$WEB_STAMP" && "$(cat "$WEB_STAMP")" == "$want" ]]; then
    log "console npm packages already installed ($WEB/node_modules)"
  else
    log "installing the console's npm packages (web/package-lock.json)"
    (cd "$WEB" && npm ci --no-audit --no-fund) || die "npm ci in web/ failed"
    echo "$want" >"$WEB_STAMP"
  fi
  local newest
  newest="$(find "$WEB/src" "$WEB/index.html" "$WEB/vite.config.ts" "$WEB/package-lock.json" -newer "$WEB/dist/index.html" 2>/dev/null | head -n 1 || true)"
  if [[ -f "$WEB/dist/index.html" && -z "$newest" ]]; then
    log "console already built ($WEB/dist)"
    return 0
  fi
  log "building the console (web/dist)"
  (cd "$WEB" && npm run build) || die "building the console failed (cd web && npm run build)"
  log "console built; cargo build embeds it"
}

# Debian packages, with sudo when not root: apt_install OPTION... PACKAGE...
apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# The console tests drive Debian's chromium and firefox-esr (never a downloaded browser).
setup_browser() {
  local missing=()
  [[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-dejavu-core)
  [[ -x /usr/bin/firefox-esr ]] || missing+=(firefox-esr)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "browsers already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n 1); $(/usr/bin/firefox-esr --version 2>/dev/null | head -n 1))"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} missing and apt-get is not available: install Chromium at /usr/bin/chromium and Firefox at /usr/bin/firefox-esr (or set CCGW_CHROMIUM, CCGW_FIREFOX)"
  log "installing Debian's ${missing[*]} with apt-get"
  apt_install --no-install-recommends "${missing[@]}"
  log "browsers ready ($(/usr/bin/chromium --version 2>/dev/null | head -n 1); $(/usr/bin/firefox-esr --version 2>/dev/null | head -n 1))"
}

# The Bash sandbox (Claude Code's own, bubblewrap on Linux) needs bwrap and socat.
setup_sandbox() {
  if command -v bwrap >/dev/null 2>&1 && command -v socat >/dev/null 2>&1; then
    log "bubblewrap and socat already installed"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "bubblewrap or socat is missing and apt-get is not available: install them, or set unsandboxed_bash = true to run Bash without a sandbox"
  log "installing Debian's bubblewrap and socat with apt-get"
  apt_install bubblewrap socat
  log "bubblewrap and socat ready"
}

# The Postgres store tests (tests/store, tests/postgres.rs) start Debian's server binaries
# themselves (src/store/postgres/scratch.rs): only the package is needed, not a running cluster.
setup_postgres() {
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    log "Postgres server binaries already installed ($(ls -d /usr/lib/postgresql/*/bin | tail -n 1))"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "Postgres is missing and apt-get is not available: install a Postgres server (initdb, postgres under /usr/lib/postgresql/N/bin), or set CCGW_TEST_POSTGRES_URL to a server's admin URL"
  log "installing Debian's postgresql with apt-get"
  apt_install --no-install-recommends postgresql
  # The package may start a cluster of its own; the tests do not use it.
  log "Postgres ready ($(ls -d /usr/lib/postgresql/*/bin | tail -n 1))"
}

if [[ $want_sandbox -eq 1 ]]; then setup_sandbox; fi
if [[ $want_postgres -eq 1 ]]; then setup_postgres; fi
if [[ $want_cli -eq 1 ]]; then setup_cli; fi
if [[ $want_python -eq 1 ]]; then setup_python; fi
if [[ $want_node -eq 1 ]]; then setup_node; fi
if [[ $want_console -eq 1 ]]; then setup_console; fi
if [[ $want_browser -eq 1 ]]; then setup_browser; fi
log "done"
