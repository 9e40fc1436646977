/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The face of engine/guest/ (the built-in test guests' heartbeats and
 * stamps) to the other folders of the engine: not exported. */
#ifndef QMIG_GUEST_H
#define QMIG_GUEST_H

#include <stddef.h>

#include "qmig_launch.h"

/* heartbeat.c: the tiny guest's answers to a check request (an NMI): how
 * many VERIFY lines came so far, and the last one. */
unsigned qm_hb_verify_line(const struct qmig_hb *hb, char *line, size_t len);
/* 1 once a heartbeat said it comes from the tiny guest. */
int qm_hb_is_tiny(const struct qmig_hb *hb);

#endif
