# Shared by scripts/demo and scripts/test: a virtual environment and the PostgreSQL
# server binaries. Sourced, not run.

ensure_venv() {  # ensure_venv DIR EXTRAS
    local dir=$1 extras=$2
    if [ ! -x "$dir/bin/python" ]; then
        python3 -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check ".[${extras}]"
}

have_postgres_server() {
    for dir in "$(pg_config --bindir 2>/dev/null)" $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)") /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            return 0
        fi
    done
    return 1
}

ensure_postgres() {
    if have_postgres_server; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing the PostgreSQL server (apt-get install postgresql) ..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        return 0
    fi
    echo "PostgreSQL server binaries (initdb, postgres) are missing: install them with" >&2
    echo "your package manager, e.g. 'sudo apt-get install postgresql'." >&2
    return 1
}
