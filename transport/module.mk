# transport/: migration ports, TCP sockets, TLS certificates.
LIB_SRCS += transport/port.c transport/sock.c transport/tls_certs.c transport/tls_check.c
PUBLIC_HEADERS += transport/qmig_transport.h
UNIT_SRCS += tests/unit/test_transport.c tests/unit/test_tls.c tests/unit/test_relay.c
ITEST_PROGS += tests/integration/transport_tcp
ITEST_SCRIPTS += tests/integration/transport_netns.sh tests/integration/tls_cli.sh
ITEST_PROGS += tests/integration/tls_qemu
# The relay: qmigrate carries the migration stream (io_uring, OpenSSL).
LIB_SRCS += transport/relay.c transport/relay_tls.c transport/relay_chan.c transport/relay_sys.c
PUBLIC_HEADERS += transport/qmig_relay.h
