# Two "hosts" on one machine for tests: a pair of network namespaces
# joined by a veth pair. Source this file (POSIX sh), then:
#
#   netns_up qmt$$          creates namespaces qmt$$-a and qmt$$-b, or exits
#                           77 ("skipped: ...") where namespaces cannot be made
#   trap netns_down EXIT    always clean up (removes namespaces, kills what
#                           still runs inside them)
#   netns_exec A|B CMD...   run a command in one namespace
#   netns_shape 1gbit       tc tbf on both veth ends (netns_unshape removes it)
#   netns_link_down / netns_link_up
#
# After netns_up: NETNS_A, NETNS_B (names), NETNS_ADDR_A=10.250.N.1,
# NETNS_ADDR_B=10.250.N.2 (N from $$), NETNS_IF (the veth name, the same in
# both namespaces). Use a prefix with $$ in it so parallel tests never
# collide; the addresses exist only inside these namespaces.

NETNS_A=
NETNS_B=
NETNS_IF=qveth0

netns_skip() {
	echo "skipped: $*"
	exit 77
}

netns_up() {
	_prefix=${1:?netns_up needs a name prefix}
	command -v ip >/dev/null 2>&1 || netns_skip "ip (iproute2) not installed"
	_n=$(( $$ % 254 + 1 ))
	NETNS_ADDR_A=10.250.$_n.1
	NETNS_ADDR_B=10.250.$_n.2
	if ! _err=$(ip netns add "$_prefix-a" 2>&1); then
		case $_err in
		*exists*) echo "netns_up: namespace $_prefix-a already exists" >&2; return 1 ;;
		*) netns_skip "cannot create network namespaces ($_err)" ;;
		esac
	fi
	NETNS_A=$_prefix-a
	if ! ip netns add "$_prefix-b"; then
		netns_down
		echo "netns_up: cannot create namespace $_prefix-b" >&2
		return 1
	fi
	NETNS_B=$_prefix-b
	# Created directly inside the namespaces: nothing appears in ours.
	ip link add "$NETNS_IF" netns "$NETNS_A" type veth \
		peer name "$NETNS_IF" netns "$NETNS_B" &&
	ip -n "$NETNS_A" addr add "$NETNS_ADDR_A/24" dev "$NETNS_IF" &&
	ip -n "$NETNS_B" addr add "$NETNS_ADDR_B/24" dev "$NETNS_IF" &&
	ip -n "$NETNS_A" link set lo up &&
	ip -n "$NETNS_B" link set lo up &&
	netns_link_up || { netns_down; echo "netns_up: veth setup failed" >&2; return 1; }
	export NETNS_A NETNS_B NETNS_ADDR_A NETNS_ADDR_B NETNS_IF
}

# netns_exec A|B CMD...
netns_exec() {
	case $1 in
	A|a) _ns=$NETNS_A ;;
	B|b) _ns=$NETNS_B ;;
	*) _ns=$1 ;;
	esac
	shift
	ip netns exec "$_ns" "$@"
}

netns_link_down() {
	ip -n "$NETNS_A" link set "$NETNS_IF" down &&
	ip -n "$NETNS_B" link set "$NETNS_IF" down
}

# Up, and wait (at most 5 s) until the kernel has finished duplicate address
# detection and carrier negotiation, so the first connection does not race.
netns_link_up() {
	ip -n "$NETNS_A" link set "$NETNS_IF" up &&
	ip -n "$NETNS_B" link set "$NETNS_IF" up || return 1
	_i=0
	while [ $_i -lt 50 ]; do
		if ip -n "$NETNS_A" link show "$NETNS_IF" | grep -q 'state UP' &&
		   ip -n "$NETNS_B" link show "$NETNS_IF" | grep -q 'state UP'; then
			return 0
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "netns_link_up: veth did not come up" >&2
	return 1
}

# netns_shape RATE [BURST]: a token bucket on both ends, e.g. 1gbit.
netns_shape() {
	_rate=${1:?netns_shape needs a rate, e.g. 1gbit}
	_burst=${2:-256kb}
	command -v tc >/dev/null 2>&1 || { echo "netns_shape: tc not installed" >&2; return 1; }
	for _ns in "$NETNS_A" "$NETNS_B"; do
		tc -n "$_ns" qdisc replace dev "$NETNS_IF" root tbf rate "$_rate" \
			burst "$_burst" latency 50ms || return 1
	done
}

netns_unshape() {
	for _ns in "$NETNS_A" "$NETNS_B"; do
		tc -n "$_ns" qdisc del dev "$NETNS_IF" root 2>/dev/null
	done
	return 0
}

# Remove everything netns_up made; safe to call twice or after a failure.
netns_down() {
	for _ns in "$NETNS_A" "$NETNS_B"; do
		[ -n "$_ns" ] || continue
		[ -e "/run/netns/$_ns" ] || continue
		# Only processes our test started live in these namespaces.
		_pids=$(ip netns pids "$_ns" 2>/dev/null)
		if [ -n "$_pids" ]; then
			kill $_pids 2>/dev/null
			sleep 0.2
			kill -9 $(ip netns pids "$_ns" 2>/dev/null) 2>/dev/null
		fi
		# Deleting one end of the veth removes its peer too.
		ip netns delete "$_ns" 2>/dev/null
	done
	NETNS_A=
	NETNS_B=
	return 0
}
