#!/usr/bin/env bash
# Several hosts on one machine, for testing `echolab compare` across hosts (issue 23):
# a server namespace and two client namespaces, each with one veth into a switch
# namespace that bridges them. Nothing is added to the namespace the script runs in, so
# the traffic of a run stays inside namespaces the script made. Needs root and iproute2.
#
#   scripts/netns.sh up   [--name N] [--link-rate RATE] [--ssh]
#   scripts/netns.sh down [--name N]
#   scripts/netns.sh run  [--name N] [--link-rate RATE] [--ssh] -- COMMAND [ARG...]
#
# `up` (re)makes the set N (default `echolab`; `up` twice leaves one set) and prints the
# prefixes to use, as shell assignments (`eval "$(scripts/netns.sh up)"`):
#   NETNS_HARNESS   where to run `echolab compare`: on the first client host, CPU 0
#                   (the load agents' CPU), as mutilate's master runs beside an agent
#   NETNS_SERVER    --server-host: `ip netns exec N-srv taskset -c 1`
#   NETNS_CLIENT1/2 --client-host: `ip netns exec N-c1 taskset -c 0`, N-c2 likewise
#   NETNS_SERVER_ADDR --server-addr: 198.18.0.1 (RFC 2544's benchmarking range)
#   NETNS_SSH       with --ssh: a --server-host that reaches the server namespace through
#                   a real ssh (Debian's sshd on port 2222 there, a key made for this set)
# `down` kills what still runs in the set's namespaces, deletes them (their veths and
# bridge go with them) and the set's keys; it is quiet when there is nothing to remove.
# `run` is up, COMMAND with those variables exported, then down however COMMAND ended
# (a trap), and exits with COMMAND's status.
#
# --link-rate RATE (tc's units: 1gbit, 100mbit) shapes every link in both directions
# with tbf: each host's egress and the switch's egress towards it. This kernel has no
# netem: no added delay, no loss, no reordering (docs/benchmarking.md, "Across hosts").
set -euo pipefail

name=echolab
rate=
ssh=0
cmd=()

usage() {
    sed -n '7,9p' "$0" | sed 's/^# *//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
action=$1
shift
while [ $# -gt 0 ]; do
    case $1 in
        --name) name=${2:?--name needs a value}; shift 2 ;;
        --link-rate) rate=${2:?--link-rate needs a value}; shift 2 ;;
        --ssh) ssh=1; shift ;;
        --) shift; cmd=("$@"); break ;;
        *) usage ;;
    esac
done
case $name in
    *[!A-Za-z0-9_-]* | '') echo "netns.sh: --name: letters, digits, - and _ only" >&2; exit 2 ;;
esac

hosts=(srv c1 c2)
# Host i has address 198.18.0.(i+1) and the switch port `port(i+1)`.
addr_of() { echo "198.18.0.$(($1 + 1))"; }
server_addr=$(addr_of 0)
ssh_port=2222
state=${TMPDIR:-/tmp}/echolab-netns-$name
nss() { echo "$name-sw"; for h in "${hosts[@]}"; do echo "$name-$h"; done; }
exists() { [ -e "/run/netns/$1" ]; }

down() {
    # sshd first: it is a daemon, and a namespace lives on while a process is in it.
    if [ -f "$state/sshd.pid" ]; then
        pid=$(cat "$state/sshd.pid")
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ]; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
    for ns in $(nss); do
        exists "$ns" || continue
        # Whatever a failed run left in the set's own namespaces (a server, an agent).
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            kill $pids 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(ip netns pids "$ns" 2>/dev/null || true)
                [ -z "$pids" ] && break
                sleep 0.1
            done
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns"
    done
    rm -rf "$state"
}

shape() { # NS DEV: tbf on DEV's egress
    # burst: a 64 KiB segment (veth hands tbf whole GSO segments) and then some.
    tc -n "$1" qdisc replace dev "$2" root tbf rate "$rate" burst 128kb latency 100ms
}

# Echoes one assignment in single quotes (the values hold no single quote).
say() { printf "%s='%s'\n" "$1" "$2"; }

pin() { # CPU: a taskset prefix, or nothing on a 1-CPU machine
    if [ "$(nproc)" -ge 2 ]; then echo " taskset -c $1"; fi
}

start_sshd() {
    local sshd=/usr/sbin/sshd
    [ -x "$sshd" ] || { echo "netns.sh: --ssh needs openssh-server ($sshd)" >&2; return 1; }
    command -v ssh >/dev/null || { echo "netns.sh: --ssh needs openssh-client" >&2; return 1; }
    # A throwaway client key and host key, for this set only.
    ssh-keygen -q -t ed25519 -N '' -C "echolab-netns-$name" -f "$state/id"
    ssh-keygen -q -t ed25519 -N '' -C "echolab-netns-$name-host" -f "$state/host_key"
    cp "$state/id.pub" "$state/authorized_keys"
    # The host key pinned: the client trusts this key for this address and no other.
    echo "[$server_addr]:$ssh_port $(cut -d' ' -f1,2 "$state/host_key.pub")" >"$state/known_hosts"
    cat >"$state/sshd_config" <<EOF
Port $ssh_port
ListenAddress $server_addr
HostKey $state/host_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
    mkdir -p /run/sshd # Debian's privilege separation directory
    ip netns exec "$name-srv" "$sshd" -f "$state/sshd_config" -E "$state/sshd.log"
    ssh_prefix="ssh -i $state/id -p $ssh_port -o BatchMode=yes -o IdentitiesOnly=yes \
-o UserKnownHostsFile=$state/known_hosts -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
$(id -un)@$server_addr"
    # Up when a command gets through, from where the harness runs.
    for _ in $(seq 50); do
        if ip netns exec "$name-c1" $ssh_prefix true 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "netns.sh: sshd in $name-srv does not answer; its log:" >&2
    cat "$state/sshd.log" >&2 || true
    return 1
}

up() {
    [ "$(id -u)" = 0 ] || { echo "netns.sh: needs root (ip netns)" >&2; exit 1; }
    down
    # A failure half-way removes what was made.
    trap 'down' EXIT
    mkdir -p "$state"
    for ns in $(nss); do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip -n "$name-sw" link add br0 type bridge
    ip -n "$name-sw" link set br0 up
    for i in "${!hosts[@]}"; do
        ns=$name-${hosts[$i]}
        port=port$((i + 1))
        ip -n "$name-sw" link add "$port" type veth peer name eth0 netns "$ns"
        ip -n "$name-sw" link set "$port" master br0 up
        ip -n "$ns" addr add "$(addr_of "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        if [ -n "$rate" ]; then
            shape "$ns" eth0
            shape "$name-sw" "$port"
        fi
    done
    ssh_prefix=
    if [ "$ssh" = 1 ]; then
        start_sshd
    fi
    trap - EXIT
    say NETNS_HARNESS "ip netns exec $name-c1$(pin 0)"
    say NETNS_SERVER "ip netns exec $name-srv$(pin 1)"
    say NETNS_CLIENT1 "ip netns exec $name-c1$(pin 0)"
    say NETNS_CLIENT2 "ip netns exec $name-c2$(pin 0)"
    say NETNS_SERVER_ADDR "$server_addr"
    if [ -n "$ssh_prefix" ]; then
        say NETNS_SSH "$ssh_prefix$(pin 1)"
    fi
    if [ -n "$rate" ]; then
        say NETNS_LINK_RATE "$rate"
    fi
}

case $action in
    up) up ;;
    down) down ;;
    run)
        [ ${#cmd[@]} -gt 0 ] || usage
        vars=$(up)
        trap 'down' EXIT
        trap 'exit 130' INT TERM
        eval "$vars"
        export NETNS_HARNESS NETNS_SERVER NETNS_CLIENT1 NETNS_CLIENT2 NETNS_SERVER_ADDR
        export NETNS_SSH=${NETNS_SSH:-} NETNS_LINK_RATE=${NETNS_LINK_RATE:-}
        status=0
        "${cmd[@]}" || status=$?
        exit "$status"
        ;;
    *) usage ;;
esac
