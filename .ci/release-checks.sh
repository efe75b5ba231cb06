#!/usr/bin/env bash
# Release checks: what must hold before a version of django-sendfleet is published.
#
#   bash .ci/release-checks.sh          (from anywhere; python3 must be Python 3.12+)
#
# 1. Builds the sdist and the wheel (python -m build) from a snapshot of the work tree (tracked
#    files plus new files git does not ignore), so nothing is written into the repository.
# 2. twine check --strict on both; the wheel must hold every module, the templates, the
#    migrations, py.typed, the sandbox package and the licence, and nothing else.
# 3. Installs the wheel into a fresh virtualenv (no editable install), copies testproject/
#    alone into an empty directory and runs the demo there, so django_sendfleet can only come
#    from the wheel; the admin's templates are loaded from it too.
# 4. ruff check, ruff format --check, mypy (mypy.ini, with django-stubs) and
#    mkdocs build --strict.
#
# Every tool lives in a throwaway virtualenv under /tmp, removed on exit. Needs PyPI and
# nothing else from the network. With uv on PATH (.ci/run installs it) the virtualenvs are
# made and filled by uv, in seconds; without it, by venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  echo "release checks need Python 3.12+ as $PYTHON, found $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/sendfleet-release.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 NO_MKDOCS_2_WARNING=1
unset PYTHONPATH

step() { printf '\n== %s\n' "$*"; }

step "Snapshot of the work tree"
SRC="$WORK/src"
mkdir -p "$SRC"
# Tracked files and untracked ones git does not ignore; files deleted in the work tree are
# skipped. -z: any file name survives.
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && while IFS= read -r -d '' file; do
      [ -e "$file" ] && printf '%s\0' "$file"
    done) \
  | (cd "$ROOT" && xargs -0 cp --parents -t "$SRC")
echo "$(find "$SRC" -type f | wc -l) files in $SRC"

step "Tools (throwaway virtualenv)"
# The installer's output goes to a log, shown only when it fails.
if command -v uv >/dev/null 2>&1; then
  make_venv() { uv venv -q -p "$PYTHON" "$1"; }
  venv_install() {
    local venv=$1 log=$2
    shift 2
    uv pip install -q -p "$venv/bin/python" "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }
  }
  venv_list() { uv pip list -p "$1/bin/python" 2>/dev/null; }
  BUILD_INSTALLER=(--installer uv)
else
  make_venv() { "$PYTHON" -m venv "$1"; }
  venv_install() {
    local venv=$1 log=$2
    shift 2
    "$venv/bin/pip" install -q "$@" >"$log" 2>&1 || { cat "$log" >&2; return 1; }
  }
  venv_list() { "$1/bin/pip" list 2>/dev/null; }
  BUILD_INSTALLER=()
fi
TOOLS="$WORK/tools"
make_venv "$TOOLS"
# django-stubs[compatible-mypy] pins the mypy release its plugin supports. The plugin imports
# testproject.settings (dj-database-url), and mypy follows the package's imports: pytest (the
# pytest plugin), the django-tasks backport, redis (the rate limiter), requests' stubs.
venv_install "$TOOLS" "$WORK/pip-tools.log" build twine "ruff==0.17.6" \
  "django-stubs[compatible-mypy]==6.1.2" types-requests dj-database-url pytest django-tasks redis \
  mkdocs mkdocs-material
"$TOOLS/bin/python" --version
venv_list "$TOOLS" | grep -iE '^(build|twine|ruff|mypy|django|django-stubs|mkdocs|mkdocs-material) ' || true

step "Build the sdist and the wheel"
DIST="$WORK/dist"
"$TOOLS/bin/python" -m build "${BUILD_INSTALLER[@]}" --outdir "$DIST" "$SRC" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
ls -l "$DIST"
SDISTS=("$DIST"/*.tar.gz)
WHEELS=("$DIST"/*.whl)
[ "${#SDISTS[@]}" -eq 1 ] && [ "${#WHEELS[@]}" -eq 1 ] \
  || { echo "expected one sdist and one wheel in $DIST" >&2; exit 1; }
WHEEL=${WHEELS[0]}

step "twine check --strict"
"$TOOLS/bin/twine" check --strict "$DIST"/*

step "Wheel contents"
"$TOOLS/bin/python" - "$WHEEL" "$SRC" <<'PY'
import sys
import zipfile
from pathlib import Path

wheel, src = Path(sys.argv[1]), Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
package = src / "django_sendfleet"


def in_package(pattern):
    return {p.relative_to(src).as_posix() for p in package.glob(pattern) if "__pycache__" not in p.parts}


problems = []
required = {
    "the modules": in_package("**/*.py"),
    "the templates": in_package("templates/**/*.html"),
    "the migrations": in_package("migrations/*.py"),
    "the sandbox package": in_package("sandbox/*.py"),
    "py.typed": {"django_sendfleet/py.typed"},
}
for what, wanted in required.items():
    if not wanted:
        problems.append(f"the source has none of {what}: is the snapshot right?")
    missing = sorted(wanted - names)
    if missing:
        problems.append(f"{what} missing from the wheel: {', '.join(missing)}")
    else:
        print(f"ok  {what}: {len(wanted)} file(s)")
if not any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names):
    problems.append("LICENSE missing from the wheel's dist-info")
else:
    print("ok  LICENSE in dist-info")
strays = sorted(n for n in names if not n.startswith("django_sendfleet/") and ".dist-info/" not in n)
if strays:
    problems.append(f"files outside the package: {', '.join(strays)}")
else:
    print("ok  nothing outside django_sendfleet/ (no tests, testproject, docs or bench)")
for problem in problems:
    print("FAIL", problem, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

step "The wheel in a fresh virtualenv"
VENV="$WORK/wheel-venv"
make_venv "$VENV"
venv_install "$VENV" "$WORK/pip-wheel.log" "$WHEEL" dj-database-url
venv_list "$VENV" | grep -iE '^(django|django-sendfleet|requests|dj-database-url) ' || true
RUN="$WORK/run"  # holds testproject/ and nothing else
mkdir -p "$RUN"
cp -R "$SRC/testproject" "$RUN/"
rm -rf "$RUN/testproject/__pycache__" "$RUN"/testproject/db.sqlite3*
(
  cd "$RUN"
  "$VENV/bin/python" - "$WHEEL" "$SRC" <<'PY'
import sys
from pathlib import Path

import django_sendfleet

wheel, src = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
location = Path(django_sendfleet.__file__).resolve()
print(f"django_sendfleet {django_sendfleet.__version__} from {location.parent}")
if "site-packages" not in location.parts or src in location.parents:
    sys.exit("django_sendfleet was not imported from the installed wheel")
version = wheel.name.split("-")[1]
if version != django_sendfleet.__version__:
    sys.exit(f"wheel version {version} != django_sendfleet.__version__ {django_sendfleet.__version__}")
changelog = (src / "CHANGELOG.md").read_text()
if f"## [{version}]" not in changelog:
    sys.exit(f"CHANGELOG.md has no '## [{version}]' section")
print(f"ok  version {version} matches __version__ and has a CHANGELOG.md section")
PY
  DJANGO_SETTINGS_MODULE=testproject.settings "$VENV/bin/python" - <<'PY'
import django

django.setup()
from pathlib import Path

from django.template.loader import get_template

import django_sendfleet

templates = Path(django_sendfleet.__file__).parent / "templates"
names = sorted(p.relative_to(templates).as_posix() for p in templates.rglob("*.html"))
for name in names:
    get_template(name)
print(f"ok  the installed app's {len(names)} templates load")
PY
  echo "-- python -m testproject.demo (cwd $RUN)"
  "$VENV/bin/python" -m testproject.demo
)

# The static checks need nothing built: run them all and report every failure at the end.
FAILED=()
check() {
  local name=$1
  shift
  step "$name"
  if (cd "$SRC" && "$@"); then
    echo "ok  $name"
  else
    echo "FAIL $name" >&2
    FAILED+=("$name")
  fi
}
check "ruff check" "$TOOLS/bin/ruff" check --no-cache .
check "ruff format --check" "$TOOLS/bin/ruff" format --no-cache --check .
check "mypy" "$TOOLS/bin/mypy" --cache-dir "$WORK/mypy-cache"
# Every import the docs show, as a user's code under mypy --strict would import it
# (no_implicit_reexport: a name must be one its module exports; docs/api.md).
check "mypy --strict on the docs' imports" sh -c '"$0" .ci/documented_imports.py > "$1" \
  && "$2" --config-file mypy.ini --strict --follow-imports=silent --cache-dir "$3" "$1"' \
  "$TOOLS/bin/python" "$WORK/documented_imports.py" "$TOOLS/bin/mypy" "$WORK/mypy-cache-docs"
check "mkdocs build --strict" "$TOOLS/bin/mkdocs" build --strict --site-dir "$WORK/site"

if [ "${#FAILED[@]}" -gt 0 ]; then
  printf '\nRelease checks FAILED: %s\n' "$(IFS=,; echo "${FAILED[*]}")" >&2
  exit 1
fi
step "Release checks passed"
