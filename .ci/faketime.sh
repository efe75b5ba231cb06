#!/usr/bin/env bash
# Runs tests under libfaketime (Debian's faketime package; .ci/services.sh installs it), so that
# a test that depends on the date or the time of day fails in CI, not on a user's machine some
# day, on two clocks:
#   1. "ahead": from noon, 400 days from today: every fixed date a test compares with now is past;
#   2. "midnight": from 00:30 UTC today: "an hour ago" is yesterday, a day boundary is 30 minutes
#      back.
# Each clock starts there and runs on; the processes a test starts (workers, manage.py) share
# it. .ci/noxfile.py's SQLite cells run every test through it, one clock each. Without
# arguments it runs both clocks over every test file that touches time (all but CLOCK_FREE
# below), in the Quick start's .venv; arguments replace that selection (e.g. one test file).
#   FAKETIME_VENV   the virtualenv to run (default: the Quick start's .venv)
#   FAKETIME_CLOCK  "ahead" or "midnight": that run only
# DATABASE_URL and HYPOTHESIS_PROFILE pass through (tests/settings.py, tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."

LIBFAKETIME=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
if [ -z "$LIBFAKETIME" ]; then
  echo "libfaketime not found: apt-get install faketime (.ci/services.sh does)" >&2
  exit 1
fi

# Every test file but those that neither read the clock nor assert anything it decides: a new
# test file runs here unless added to this list. (tests/test_fixed_dates.py keeps fixed dates
# out of tests/ in every run.) test_secrets.py only looks for secrets in what the failure paths
# print; those paths run here, with their times checked, in test_fault_matrix.py.
CLOCK_FREE=(
  tests/test_package_structure.py          # the source's shape, read with ast
  tests/message/test_addresses.py          # which address a string means (hypothesis)
  tests/message/test_properties.py         # which requests a message makes (hypothesis)
  tests/credentials/test_error_reports.py  # secrets absent from Django's error reports
  tests/credentials/test_secrets.py        # secrets absent from every output
)
SELECTION=(tests "${CLOCK_FREE[@]/#/--ignore=}")
[ "$#" -gt 0 ] && SELECTION=("$@")

RUN_DIR=$(mktemp -d /tmp/sendfleet-faketime.XXXXXX)
# time.sleep under libfaketime 0.9.10 with a real monotonic clock: see .ci/faketime_sleep.py.
# A .pth file loads it into each Python process of the virtualenv that has SENDFLEET_FAKETIME_SLEEP set
# (a test may give a child its own PYTHONPATH, not strip the variables it inherits).
VENV=${FAKETIME_VENV:-.venv}
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
PTH="$SITE/_sendfleet_ci_faketime_sleep_$$.pth"  # this run's: another may run beside it
cat >"$PTH" <<'PTH'
import os; p = os.environ.get("SENDFLEET_FAKETIME_SLEEP"); p and exec(compile(open(p).read(), p, "exec"), {"__name__": "faketime_sleep"})
PTH
# redis-server aborts under libfaketime 0.9.10 (it reads the clock while the library is still
# starting): the ones the tests start keep the real clock, as a separate server would.
if REDIS_SERVER=$(command -v redis-server); then
  printf '#!/bin/sh\nexec env -u LD_PRELOAD %s "$@"\n' "$REDIS_SERVER" >"$RUN_DIR/redis-server"
  chmod +x "$RUN_DIR/redis-server"
fi
trap 'rm -f "$PTH"; rm -rf "$RUN_DIR"' EXIT

failed=0
run_from() {  # run_from "<UTC date> <time>"
  local started=$SECONDS status=0
  echo "== ${SELECTION[*]}: the clock starting at $1 UTC (libfaketime)"
  # FAKETIME_DONT_FAKE_MONOTONIC: a faked monotonic clock hangs every timed wait (sem_clockwait
  # is not translated; see .ci/faketime_sleep.py).
  # FAKETIME_FORCE_MONOTONIC_FIX=0: with the monotonic clock real, 0.9.10's "fix" turns each
  # timed wait on a condition variable (the GIL's) into one that has already expired: two
  # threads wanting the GIL then run 30 times slower, and timing tests fail.
  env TZ=UTC PATH="$RUN_DIR:$PATH" LD_PRELOAD="$LIBFAKETIME" FAKETIME="@$1" \
    FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0 \
    SENDFLEET_FAKETIME_SLEEP="$PWD/.ci/faketime_sleep.py" \
    "$VENV/bin/pytest" -q -p no:cacheprovider "${SELECTION[@]}" || status=$?
  echo "== $1 UTC: pytest exit $status, $((SECONDS - started)) s"
  [ "$status" -eq 0 ] || failed=1
}
CLOCK=${FAKETIME_CLOCK:-}
case "$CLOCK" in "" | ahead | midnight) ;; *) echo "FAKETIME_CLOCK: ahead or midnight" >&2; exit 2 ;; esac
[ -z "$CLOCK" ] || [ "$CLOCK" = ahead ] && run_from "$(date -u -d '+400 days' +%F) 12:00:00"
[ -z "$CLOCK" ] || [ "$CLOCK" = midnight ] && run_from "$(date -u +%F) 00:30:00"
exit "$failed"
