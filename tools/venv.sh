#!/bin/sh
# Make sure a virtual environment holds the locked set, for `make` (usage: tools/venv.sh VENV EXTRA...).
#
# - Python: $PYTHON if given, else the newest supported python3.x on PATH that actually runs
#   (a pyenv shim for a version that is not selected exists on PATH but fails when run).
# - An environment that cannot run, has the wrong Python, or was built from another pyproject.toml,
#   requirements.lock or Python is rebuilt, saying why; a current one is left alone (one quick check).
# - The install is tools/install_locked.py: the lock's exact versions, every file's hash checked.
set -eu

VENV=$1
shift
EXTRAS=$*
SUPPORTED="3.13 3.12 3.11"   # newest first; keep in step with requires-python in pyproject.toml

say() { printf 'streamscope: %s\n' "$*" >&2; }

# The "X.Y" version of interpreter $1, or nothing when it does not run.
version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

is_supported() {
    for v in $SUPPORTED; do [ "$1" = "$v" ] && return 0; done
    return 1
}

choose_python() {
    if [ -n "${PYTHON:-}" ]; then
        found=$(version_of "$PYTHON")
        if [ -z "$found" ]; then
            say "PYTHON=$PYTHON does not run. Pass a Python 3.11, 3.12 or 3.13 interpreter, e.g. make PYTHON=python3.12 lab"
            exit 1
        fi
        if ! is_supported "$found"; then
            say "PYTHON=$PYTHON is Python $found; streamscope supports 3.11, 3.12 and 3.13"
            exit 1
        fi
        echo "$PYTHON"
        return
    fi
    for v in $SUPPORTED; do
        if [ "$(version_of "python$v")" = "$v" ]; then
            echo "python$v"
            return
        fi
    done
    if is_supported "$(version_of python3)"; then
        echo python3
        return
    fi
    say "no Python 3.11, 3.12 or 3.13 found on PATH (tried python3.13, python3.12, python3.11, python3)."
    say "Install one, e.g.: sudo apt install python3.12 python3.12-venv (Debian/Ubuntu),"
    say "  brew install python@3.13 (macOS), pyenv install 3.13, or https://www.python.org/downloads/"
    say "then run make again, or name it: make PYTHON=/path/to/python3.13 lab"
    exit 1
}

rebuild() {
    say "$1: rebuilding $VENV"
    rm -rf "$VENV"
}

# A PYTHON that cannot be used stops here, before anything is touched.
PY=""
if [ -n "${PYTHON:-}" ]; then
    PY=$(choose_python)
fi

# An existing environment is kept when its Python runs, is supported, is the one PYTHON names (if
# given) and has pip; otherwise it is removed, saying why, and made again.
HAVE=""
if [ -e "$VENV" ]; then
    HAVE=$(version_of "$VENV/bin/python")
    if [ -z "$HAVE" ]; then
        rebuild "$VENV/bin/python is missing or does not run (a half-made or moved environment)"
    elif ! is_supported "$HAVE"; then
        rebuild "$VENV has Python $HAVE, which streamscope does not support"
    elif [ -n "$PY" ] && [ "$HAVE" != "$(version_of "$PY")" ]; then
        rebuild "$VENV has Python $HAVE but PYTHON=$PY is Python $(version_of "$PY")"
    elif ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rebuild "$VENV has no working pip"
    fi
    [ -e "$VENV" ] || HAVE=""
fi

if [ -z "$HAVE" ]; then
    [ -n "$PY" ] || PY=$(choose_python)
    HAVE=$(version_of "$PY")
    say "creating $VENV with $PY (Python $HAVE)"
    if ! "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        say "$PY could not create a virtual environment; on Debian/Ubuntu: sudo apt install python$HAVE-venv"
        exit 1
    fi
fi

# What the environment was built from: the stamp changes when any of these does.
STAMP="$VENV/.installed-$(cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)-py$HAVE-$(echo $EXTRAS | tr " " ,)"
if [ -e "$STAMP" ]; then
    exit 0
fi
say "installing the locked set (requirements.lock) into $VENV"
# A failed install leaves no stamp, so the next make tries again.
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" tools/install_locked.py $EXTRAS
rm -f "$VENV"/.installed-*
touch "$STAMP"
