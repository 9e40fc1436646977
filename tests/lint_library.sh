#!/bin/sh
# What the library must not hold (docs/API.md, "Configuration"):
#  - a path of the source tree it was built in (strings of the shared
#    library name no directory under this tree);
#  - an environment variable of its own: qmp/, transport/ and engine/ call
#    getenv() only for the system's XDG_RUNTIME_DIR and TMPDIR. The CLI
#    reads QMIGRATE_GUEST_DIR, QMIGRATE_LINUX_DIR and QMIGRATE_ACCEL and
#    passes them in qmig_launch_defaults_set();
#  - the test guests: their host side (heartbeat reader qmig_hb_*, the tiny
#    guest's verifier qmig_tiny_*, the plug-in) lives in
#    libqmigrate-guests.a (tests/guests/host); libqmigrate exports none of
#    it and no library file includes its header or the tiny guest's ABI.
#    The engine reaches a guest only through struct qmig_guest_ops;
#  - a QMP command sent by name: every command goes through its function in
#    qmp/commands.c (one place shows the whole vocabulary). Outside qmp/,
#    a raw call (qmig_qmp_conn_call, qmig_qmp_command, qm_call_get) fails
#    unless its line says "raw QMP:" and why (the CLI's `qmigrate qmp`
#    passthrough; the core's own benchmark). tests/ test the QMP layer
#    itself and may send anything.
cd "$(dirname "$0")/.." || exit 1
bad=0
tree=$(pwd -P)
lib=$(ls libqmigrate.so.* 2>/dev/null | head -1)
if [ -z "$lib" ]; then
	echo "skipped: libqmigrate.so not built (make lib)"
	exit 77
fi
if strings "$lib" | grep -F "$tree"; then
	echo "FAIL: $lib holds a path of the source tree ($tree)"
	bad=1
fi
hits=$(grep -rnE 'getenv\("[A-Z_]+"\)' qmp transport engine --include='*.c' |
	grep -vE 'getenv\("(XDG_RUNTIME_DIR|TMPDIR)"\)')
if [ -n "$hits" ]; then
	echo "FAIL: the library reads its own environment (pass it through options):"
	echo "$hits"
	bad=1
fi
guests=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -E '^qmig_(hb|tiny|test_guest)_')
listed=$(grep -E '^qmig_(hb|tiny|test_guest)_' libqmigrate.symbols)
if [ -n "$guests$listed" ]; then
	echo "FAIL: test-guest functions exported by libqmigrate (they belong in tests/guests/host):"
	echo "$guests$listed"
	bad=1
fi
hits=$(grep -rnE '#include "(qmig_guests\.h|[^"]*tiny_abi\.h)"|qmig_(hb|tiny)_[a-z_]*\(' \
	qmp transport engine --include='*.c' --include='*.h')
if [ -n "$hits" ]; then
	echo "FAIL: the library knows a test guest (use struct qmig_guest_ops, qmig_guest.h):"
	echo "$hits"
	bad=1
fi
hits=$(grep -rnE '\b(qmig_qmp_conn_call(_fd)?|qmig_qmp_command|qm_call_get)\(' \
	engine transport tools bench examples tests/guests --include='*.c' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*(int|/\*|\*)' | grep -v 'raw QMP:')
if [ -n "$hits" ]; then
	echo "FAIL: a QMP command sent by name outside qmp/ (give it a function in qmp/commands.c):"
	echo "$hits"
	bad=1
fi
[ $bad = 0 ] || exit 1
echo "ok: $lib holds no path of $tree, reads no environment of its own, exports no test guest;"
echo "ok: every QMP command outside qmp/ goes through its function in qmp/commands.c"
