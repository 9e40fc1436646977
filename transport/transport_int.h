/* transport/: helpers shared between this module's files. Not exported. */
#ifndef QMIG_TRANSPORT_INT_H
#define QMIG_TRANSPORT_INT_H

#include <stddef.h>

/* snprintf into an optional message buffer (msg may be NULL). */
void qm_tp_msg(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* OpenSSL's first queued error as text in buf (the queue is cleared). */
const char *qm_tp_ssl_err(char *buf, size_t len);
/* Is s an IPv4 or IPv6 address literal? */
int qm_tp_is_ip(const char *s);

#endif
