# Shared by scripts/test and scripts/serve; source it from the repository root.
# It only defines functions: installing system packages and setting up .venv.

ACD_PYTHON=${ACD_PYTHON:-python3}
_acd_apt_updated=0

# Run a command as root: directly when we are root, else through sudo.
acd_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root or sudo to run: $*" >&2
        return 1
    fi
}

# Install Debian packages, refreshing the package lists at most once per run.
acd_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "apt-get not found; install these packages by hand: $*" >&2
        return 1
    fi
    if [ "$_acd_apt_updated" -eq 0 ]; then
        acd_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        _acd_apt_updated=1
    fi
    acd_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

acd_require_python() {
    if ! command -v "$ACD_PYTHON" >/dev/null 2>&1; then
        echo "$ACD_PYTHON not found; Python 3.11 or newer is needed" >&2
        return 1
    fi
    if ! "$ACD_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "Python 3.11 or newer is needed; $ACD_PYTHON is $("$ACD_PYTHON" -V 2>&1)" >&2
        return 1
    fi
}

# The C fast path of the media code (media/_fastrtp.c) needs a C compiler and
# the interpreter's headers at install time. Without them the install still
# succeeds and media runs in pure Python (the engine's log says so); with
# ACD_REQUIRE_NATIVE=1 (the test command sets it) their absence is an error.
acd_ensure_compiler() {
    local include
    include=$("$ACD_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if command -v cc >/dev/null 2>&1 && [ -f "$include/Python.h" ]; then
        return 0
    fi
    if ! acd_apt_install gcc libc6-dev python3-dev; then
        if [ "${ACD_REQUIRE_NATIVE:-0}" = 1 ]; then
            return 1
        fi
        echo "no C compiler or Python headers: media will run in pure Python" >&2
    fi
}

# acd_setup_venv [EXTRA]: create .venv when missing and install the engine into
# it in editable mode, with the optional dependency group EXTRA (e.g. test).
acd_setup_venv() {
    local target=.
    if [ -n "${1:-}" ]; then
        target=".[$1]"
    fi
    acd_require_python
    acd_ensure_compiler
    if [ ! -x .venv/bin/pip ]; then
        # Debian ships venv's ensurepip separately, in python3-venv.
        if ! "$ACD_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            acd_apt_install python3-venv
        fi
        "$ACD_PYTHON" -m venv .venv
    fi
    .venv/bin/pip install -q --disable-pip-version-check -e "$target"
    if [ "${ACD_REQUIRE_NATIVE:-0}" = 1 ] && ! .venv/bin/python -c 'import media._fastrtp'; then
        echo "media._fastrtp did not build; see pip's output above" >&2
        return 1
    fi
}

# The browser pages (web/src, JsSIP from npm) bundled by esbuild into
# acd/web/static/, which the engine serves. Needs Node.js 18 or newer and
# npm; installs Debian's when missing. With ACD_REQUIRE_WEB=1 (the test
# command sets it) a failure is an error; otherwise the engine runs without
# its pages and says so at /agent/.
acd_build_web() {
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
        if ! acd_apt_install nodejs npm; then
            echo "no Node.js and npm: the browser pages are not built" >&2
            [ "${ACD_REQUIRE_WEB:-0}" = 1 ] && return 1
            return 0
        fi
    fi
    if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)'; then
        echo "Node.js 18 or newer is needed for the browser pages; this is $(node --version)" >&2
        [ "${ACD_REQUIRE_WEB:-0}" = 1 ] && return 1
        return 0
    fi
    # npm ci only when the lock file changed since the last install.
    if [ ! -f web/node_modules/.package-lock.json ] \
        || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
        (cd web && npm ci --no-audit --no-fund --loglevel=error)
    fi
    node web/build.mjs
}
