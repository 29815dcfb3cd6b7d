#!/usr/bin/env bash
# peers.sh - ketenbus next to RabbitMQ and NATS JetStream on one workload.
#
# `make bench-peers` runs this. It installs Debian's rabbitmq-server and
# nats-server (with librabbitmq-dev and libnats-dev for the C clients) when
# missing, runs each server on 127.0.0.1 with its data in a scratch
# directory, measures the workload of tests/bench/peer_common.h (256-byte
# messages, 1 producer to 1 consumer, publishes acknowledged by the server
# within a window of 4,000, explicit consumer acks), stops every process it
# started by pid, and prints the figures next to ketenbus's from the same run
# (ketenbus-bench --only peer: a fresh ketenbusd with CURVE, rules, audit
# and group commit, driven over the wire; signature checks on).
#
# Environment: KB_BUILD (default build), BENCH_QUICK=1 (20,000 messages per
# system instead of 100,000), KB_KEEP_TMP=1 (keep the scratch directory).
set -euo pipefail

BUILD=${KB_BUILD:-build}
N=100000
[ "${BENCH_QUICK:-}" = 1 ] && N=20000
READY_S=60                       # longest a server may take to start
PKGS="rabbitmq-server nats-server librabbitmq-dev libnats-dev"
SRC=$(cd "$(dirname "$0")" && pwd)

log() { echo "peers: $*" >&2; }

# ------------------------------------------------------------ packages
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing$missing"
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else
        log "missing$missing; run as root"; exit 1; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086 # one word per package
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
mkdir -p "$BUILD/bench"
for c in rabbitmq:librabbitmq nats:libnats; do
    bin="$BUILD/bench/peer_${c%%:*}" src="$SRC/peer_${c%%:*}.c"
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
        # shellcheck disable=SC2046
        cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$bin" "$src" \
            $(pkg-config --cflags --libs "${c#*:}") -pthread
    fi
done
[ -x "$BUILD/ketenbus-bench" ] || { log "build $BUILD/ketenbus-bench first (make bench-peers does)"; exit 1; }

# ------------------------------------------------------------ scratch and cleanup
SCRATCH=$(mktemp -d /tmp/ketenbus-peers.XXXXXX)
PIDS=()
stop_pid() {   # stop_pid PID: TERM, wait up to 30 s, then KILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    PIDS=()
    if [ -z "${KB_KEEP_TMP:-}" ]; then rm -rf "$SCRATCH"; else log "kept $SCRATCH"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # wait_port PORT PID: until 127.0.0.1:PORT accepts, while PID lives
    local i
    for i in $(seq $((READY_S * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

RESULTS=()

# ------------------------------------------------------------ ketenbus
log "ketenbus: $N messages"
if line=$("$BUILD/ketenbus-bench" --build "$BUILD" --only peer --peer-n "$N" 2>"$SCRATCH/ketenbus.err" | grep '^peer='); then
    RESULTS+=("$line")
else
    log "ketenbus run failed:"; cat "$SCRATCH/ketenbus.err" >&2
fi
# and without Ed25519 checks, where the broker has verify_signatures: false
log "ketenbus, signature checks off: $N messages"
if line=$("$BUILD/ketenbus-bench" --build "$BUILD" --only peer --peer-checks-off --peer-n "$N" 2>"$SCRATCH/ketenbus-off.err" | grep '^peer='); then
    RESULTS+=("$line")
else
    log "ketenbus with checks off not measured (no verify_signatures switch?)"
fi

# ------------------------------------------------------------ NATS JetStream
NPORT=$(free_port)
mkdir -p "$SCRATCH/nats"
nats-server -js -sd "$SCRATCH/nats" -a 127.0.0.1 -p "$NPORT" -l "$SCRATCH/nats/server.log" &
NPID=$!
PIDS+=("$NPID")
if wait_port "$NPORT" "$NPID"; then
    log "nats-server $(nats-server --version 2>/dev/null | head -1) pid $NPID: $N messages"
    if line=$("$BUILD/bench/peer_nats" "nats://127.0.0.1:$NPORT" "$N"); then RESULTS+=("$line"); else log "NATS run failed"; fi
else
    log "nats-server did not start; see $SCRATCH/nats/server.log"
fi
stop_pid "$NPID"

# ------------------------------------------------------------ RabbitMQ
R="$SCRATCH/rabbit"
mkdir -p "$R/mnesia" "$R/log"
EPORT=$(free_port) RPORT=$(free_port) DPORT=$(free_port)
printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$RPORT" > "$R/rabbitmq.conf"
echo '[].' > "$R/enabled_plugins"
export HOME="$R" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPORT" \
       RABBITMQ_NODENAME="bench@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$RPORT" \
       RABBITMQ_DIST_PORT="$DPORT" RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log" \
       RABBITMQ_CONFIG_FILE="$R/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins" \
       RABBITMQ_PID_FILE="$R/rabbit.pid"
epmd -address 127.0.0.1 -port "$EPORT" &
EPID=$!
PIDS+=("$EPID")
# the start script itself, not /usr/sbin's wrapper (which changes user and directory)
/usr/lib/rabbitmq/bin/rabbitmq-server > "$R/log/stdout.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
if wait_port "$RPORT" "$RPID"; then
    RVER=$(dpkg-query -W -f='${Version}' rabbitmq-server)
    for q in classic quorum; do
        log "rabbitmq-server $RVER pid $RPID, $q queue: $N messages"
        if line=$("$BUILD/bench/peer_rabbitmq" 127.0.0.1 "$RPORT" "$q" "$N"); then RESULTS+=("$line"); else log "RabbitMQ $q run failed"; fi
    done
else
    log "rabbitmq-server did not start; see $R/log"
fi
# the Erlang VM's own pid (RABBITMQ_PID_FILE) first, then the start script, then epmd
if [ -s "$R/rabbit.pid" ]; then stop_pid "$(cat "$R/rabbit.pid")"; fi
stop_pid "$RPID"
stop_pid "$EPID"
PIDS=()

# ------------------------------------------------------------ table
field() { sed -nE "s/.*\\b$2=([0-9.]+).*/\\1/p" <<<"$1"; }
declare -A CONF CONS
for line in "${RESULTS[@]}"; do
    name=$(sed -nE 's/^peer=([^ ]+).*/\1/p' <<<"$line")
    CONF[$name]=$(field "$line" confirmed_per_s)
    CONS[$name]=$(field "$line" consumed_per_s)
done
kb_conf=${CONF[ketenbus]:-0} kb_cons=${CONS[ketenbus]:-0}
off_conf=${CONF[ketenbus-checks-off]:-0} off_cons=${CONS[ketenbus-checks-off]:-0}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

echo
echo "peers: $N messages of 256 B, 1 producer -> 1 consumer, publishes acknowledged by the server (window 4000),"
echo "explicit consumer acks; all on 127.0.0.1 of this machine ($(nproc) cores), data in $SCRATCH (scratch)"
printf '%-31s %-44s %12s %12s %10s %10s\n' "system" "acknowledges a publish after" "confirmed/s" "consumed/s" "kb/this" "kb/this"
printf '%-31s %-44s %12s %12s %10s %10s\n' "" "" "" "(acked)" "(confirm)" "(consume)"
row() { # row KEY LABEL DURABILITY
    local c=${CONF[$1]:-} d=${CONS[$1]:-}
    if [ -z "$c" ]; then printf '%-31s %-44s %12s %12s\n' "$2" "$3" "failed" "failed"; return; fi
    printf '%-31s %-44s %12.0f %12.0f %10s %10s\n' "$2" "$3" "$c" "$d" "$(ratio "$kb_conf" "$c")" "$(ratio "$kb_cons" "$d")"
}
row ketenbus "ketenbus (signature checks on)" "synced LevelDB group commit (fdatasync)"
row ketenbus-checks-off "ketenbus, signature checks off" "synced LevelDB group commit (fdatasync)"
row rabbitmq-classic "RabbitMQ durable classic queue" "fsync of its message store (persistent msg)"
row rabbitmq-quorum "RabbitMQ quorum queue" "fsync of its Raft log"
row nats-jetstream "NATS JetStream, file storage" "NOT synced: buffered, flushed on a timer"
echo
echo "Debian's nats-server 2.9 acknowledges a JetStream publish before its data reaches the disk (it syncs on a"
echo "timer, sync_interval, default 2 min), while ketenbus and RabbitMQ confirm only after a synced write: the NATS"
echo "figure is not a like-for-like durable figure."
verdict() { awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN { if (b > 0 && a >= k * b) print "met"; else print "MISSED" }'; }
targets() { # targets LABEL CONFIRMED CONSUMED
    echo "targets, $1 (confirmed / consumed):" \
         ">= 3 x RabbitMQ classic: $(verdict "$2" "${CONF[rabbitmq-classic]:-0}" 3) / $(verdict "$3" "${CONS[rabbitmq-classic]:-0}" 3);" \
         ">= 3 x quorum: $(verdict "$2" "${CONF[rabbitmq-quorum]:-0}" 3) / $(verdict "$3" "${CONS[rabbitmq-quorum]:-0}" 3);" \
         ">= NATS JetStream: $(verdict "$2" "${CONF[nats-jetstream]:-0}" 1) / $(verdict "$3" "${CONS[nats-jetstream]:-0}" 1)"
}
targets "ketenbus, checks on" "$kb_conf" "$kb_cons"
[ "$off_conf" = 0 ] || targets "ketenbus, checks off" "$off_conf" "$off_cons"
echo "(kb/this columns: ketenbus with signature checks on divided by the row's figure)"
[ "${#RESULTS[@]}" -ge 4 ]
