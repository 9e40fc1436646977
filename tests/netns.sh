# Two "hosts" on one machine for tests: a pair of network namespaces
# joined by a veth pair. Source this file (POSIX sh) from the top of the
# tree, then:
#
#   netns_up qmt$$          creates namespaces qmt$$-a and qmt$$-b, or exits
#                           77 ("skipped: ...") where namespaces cannot be made
#   trap netns_down EXIT    always clean up (removes namespaces, kills what
#                           still runs inside them)
#   netns_exec A|B CMD...   run a command in one namespace
#   netns_shape 1gbit       tc tbf on both veth ends (netns_unshape removes it)
#   netns_link_down / netns_link_up
#
# After netns_up: NETNS_A, NETNS_B (names), NETNS_ADDR_A, NETNS_ADDR_B (the
# addresses, which exist only inside these namespaces), NETNS_IF (the veth
# name, the same in both namespaces). Use a prefix with $$ in it so parallel
# tests never collide.
#
# The work is done by `qmigrate netns` (tools/netns.c), the same code that
# shapes `qmigrate bench`'s link=RATE: one mechanism for tests and bench.

NETNS_A=
NETNS_B=
NETNS_IF=qveth0
NETNS_QMIGRATE=${QMIGRATE:-./tools/qmigrate}
case $NETNS_QMIGRATE in /*) ;; *) NETNS_QMIGRATE=$(pwd)/$NETNS_QMIGRATE ;; esac

netns_skip() {
	echo "skipped: $*"
	exit 77
}

netns_up() {
	_prefix=${1:?netns_up needs a name prefix}
	[ -x "$NETNS_QMIGRATE" ] || { echo "netns_up: $NETNS_QMIGRATE not built" >&2; return 1; }
	_out=$("$NETNS_QMIGRATE" netns up "$_prefix")
	case $? in
	0) ;;
	77) echo "$_out"; exit 77 ;;
	*) return 1 ;;
	esac
	eval "$_out"
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
	"$NETNS_QMIGRATE" netns link-down "${NETNS_A%-a}"
}

# Up, and wait (at most 5 s) until both ends say UP.
netns_link_up() {
	"$NETNS_QMIGRATE" netns link-up "${NETNS_A%-a}"
}

# netns_shape RATE [BURST]: a token bucket on both ends, e.g. 1gbit.
netns_shape() {
	"$NETNS_QMIGRATE" netns shape "${NETNS_A%-a}" "${1:?netns_shape needs a rate, e.g. 1gbit}" ${2:+"$2"}
}

netns_unshape() {
	"$NETNS_QMIGRATE" netns unshape "${NETNS_A%-a}"
}

# Remove everything netns_up made; safe to call twice or after a failure.
netns_down() {
	[ -n "$NETNS_A" ] && "$NETNS_QMIGRATE" netns down "${NETNS_A%-a}"
	NETNS_A=
	NETNS_B=
	return 0
}
