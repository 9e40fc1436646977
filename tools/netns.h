/* Two "hosts" on one machine: a pair of network namespaces joined by a
 * veth pair, optionally shaped with tc tbf. The one implementation, used
 * by `qmigrate bench` (link=RATE) and, through `qmigrate netns`, by the
 * shell tests (tests/netns.sh). Needs root, ip and tc. */
#ifndef QMIG_TOOLS_NETNS_H
#define QMIG_TOOLS_NETNS_H

#include <stddef.h>

#define NETNS_IF "qveth0" /* the veth's name, the same in both namespaces */

struct netns_link {
	char a[64], b[64];           /* PREFIX-a, PREFIX-b */
	char addr_a[32], addr_b[32]; /* 10.250.N.1 and .2, only inside them */
	int up;
};

/* Create both namespaces, the veth between them, addresses, and wait until
 * the link is up. 0; -ENOTSUP when namespaces cannot be made here (why
 * says it); -EEXIST when PREFIX-a exists; -EIO another step failed
 * (nothing is left). */
int netns_up(struct netns_link *l, const char *prefix, char *why, size_t len);
/* Kill what still runs inside them (only there), delete both. */
void netns_down(struct netns_link *l);
/* tc tbf RATE (e.g. 1gbit) with BURST (NULL: 256kb) on both ends. */
int netns_shape(const struct netns_link *l, const char *rate, const char *burst);
int netns_unshape(const struct netns_link *l);
/* Carrier up (waiting, at most 5 s, until both ends say UP) or down. */
int netns_set_link(const struct netns_link *l, int up);

#endif
