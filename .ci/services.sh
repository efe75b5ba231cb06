# Sourced by .ci/run: installs (if missing) and starts the services the suites need, on
# loopback only, in throwaway directories; exports their URLs. Stopped on exit.

CI_TMP=$(mktemp -d /tmp/sendfleet-ci.XXXXXX)
chmod 755 "$CI_TMP"

need_packages=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || need_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need_packages+=(faketime)  # .ci/faketime.sh
if [ "${#need_packages[@]}" -gt 0 ]; then
  echo "== Installing ${need_packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
PG_PORT=54329
PG_RUN="$CI_TMP/pg"  # owned by postgres: data, log and socket
PG_DATA="$PG_RUN/data"
mkdir -p "$PG_RUN" && chown postgres: "$PG_RUN"
su postgres -c "$PG_BIN/initdb -D $PG_DATA -A trust -U postgres" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $PG_DATA -l $PG_RUN/server.log -w \
  -o '-p $PG_PORT -k $PG_RUN -c listen_addresses=127.0.0.1 -c fsync=off' start" >/dev/null
su postgres -c "$PG_BIN/createdb -h 127.0.0.1 -p $PG_PORT sendfleet"
export POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/sendfleet"

# A Redis server per lane of .ci/run (tests flush their database, and the task engines'
# brokers use fixed database numbers): REDIS_URL is the first, CI_REDIS_URLS lists them all.
REDIS_PORTS=()
for ((lane = 0; lane < ${CI_LANES:-1}; lane++)); do REDIS_PORTS+=($((63799 - lane))); done
CI_REDIS_URLS=""
for port in "${REDIS_PORTS[@]}"; do
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$CI_TMP/redis-$port.pid" --logfile "$CI_TMP/redis-$port.log"
  CI_REDIS_URLS+="${CI_REDIS_URLS:+ }redis://127.0.0.1:$port/0"
done
export CI_REDIS_URLS REDIS_URL="redis://127.0.0.1:${REDIS_PORTS[0]}/0"

stop_services() {
  su postgres -c "$PG_BIN/pg_ctl -D $PG_DATA -m immediate stop" >/dev/null 2>&1 || true
  for pidfile in "$CI_TMP"/redis-*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$CI_TMP"
}
trap stop_services EXIT
echo "== Services: PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:${REDIS_PORTS[*]}"
