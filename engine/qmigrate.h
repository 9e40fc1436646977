/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — live migration of QEMU virtual machines over QMP.
 * The umbrella header: include this one.
 */
#ifndef QMIGRATE_H
#define QMIGRATE_H

#include "qmig_qmp.h"
#include "qmig_commands.h"
#include "qmig_launch.h"
#include "qmig_guest.h"
#include "qmig_migrate.h"
#include "qmig_transport.h"
#include "qmig_doctor.h"
#include "qmig_policy.h"
#include "qmig_journal.h"
#include "qmig_save.h"
#include "qmig_agent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "0.1.0". */
const char *qmig_version(void);

#ifdef __cplusplus
}
#endif
#endif
