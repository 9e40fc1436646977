# Storage migration, the link between two namespaces cut while the disk
# mirror runs: the stall is detected (15 s without progress), the NBD
# client is yanked, and the source guest runs on its own disk (still
# writing and reading back every block), with no mirror job, NBD node,
# export or listening NBD server left.
. tests/lib.sh
. tests/integration/storage_lib.sh
. tests/netns.sh
linux_guest_or_skip

# The link cut between two namespaces during the mirror.
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
CLEANUP_HOOKS="netns_down"
netns_up "qsf$$" || fail "could not set up the namespaces"
start_pair cut "$NETNS_A" "$NETNS_B"
migrate_bg cut --dst-addr "$NETNS_ADDR_B"
netns_link_down || fail "cut: could not take the link down"
t0=$(date +%s%N)
wait $mig; rc=$?
echo "cut: exit $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(message "$T/cut.jsonl")"
netns_link_up
message "$T/cut.jsonl" | grep -q "moved nothing" || fail "cut: not the stall message"
ended cut 4 $rc
no_storage_leftovers cut "$src_qmp" "$dst_qmp"
port=$(nbd_port "$T/cut.jsonl")
ip netns exec "$NETNS_B" ss -Htln | awk '{print $4}' | grep -q ":$port\$" &&
	fail "cut: the NBD server still listens on $port"
ok "link cut during the mirror: stall detected, source runs on its disk, nothing left"
