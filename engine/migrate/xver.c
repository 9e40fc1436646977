/* The destination of a launched cross-version migration: the source's RAM
 * size and machine type, so that an older guest lands on a newer QEMU
 * unchanged (the doctor has refused a pair that cannot work). */
#include "migrate.h"
#include "doctor/doctor.h"

#define DEFAULT_QEMU "qemu-system-x86_64"

void qm_xver_dst_spec(struct qmig_migration *m, struct qmig_vm_spec *spec, struct qm_xver *x)
{
	struct side *src = &m->side[SRC];
	size_t n = 0;
	int has;

	if (m->o.dst_qemu_binary)
		spec->qemu_binary = m->o.dst_qemu_binary;
	if (!src->vm || !src->qmp)
		return;
	/* The same RAM size as the source, whatever the destination's own
	 * version would choose for the TCG workaround. */
	spec->mem_bytes = qmig_vm_mem_bytes(src->vm);
	spec->no_mem_workaround = 1;
	if (qm_machine_type(src->qmp, x->machine, sizeof(x->machine)) < 0) {
		qm_log(m, QMIG_LOG_WARN, "destination: the source's machine type is unknown; "
					 "launching with QEMU's default");
		return;
	}
	has = qm_binary_has_machine(spec->qemu_binary, x->machine);
	if (has <= 0) {
		/* The doctor refuses this pair with the reason. */
		qm_log(m, QMIG_LOG_WARN, "destination: QEMU %s %s machine type %s",
		       spec->qemu_binary ? spec->qemu_binary : DEFAULT_QEMU,
		       has == 0 ? "does not have" : "could not be asked for", x->machine);
		return;
	}
	for (const char *const *a = spec->extra_args; a && *a && n + 3 < 40; a++)
		x->argv[n++] = *a;
	x->argv[n++] = "-machine";
	x->argv[n++] = x->machine;
	x->argv[n] = NULL;
	spec->extra_args = x->argv;
	qm_log(m, QMIG_LOG_INFO, "destination: machine type pinned to the source's %s",
	       x->machine);
}
