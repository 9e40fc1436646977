/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — convergence policies, the precopy model, and the simulator.
 *
 * A policy is a versioned table of callbacks. Each monitor sample it sees
 * the measurements and the model's prediction, and returns actions; it
 * never sees fds, QMP or JSON. The engine turns actions into QMP and
 * records them. The same policies run in the offline simulator and in
 * replays of recorded traces. A plug-in is a shared object exporting
 * `const struct qmig_policy_ops *qmig_policy_entry(void)`.
 */
#ifndef QMIG_POLICY_H
#define QMIG_POLICY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QMIG_POLICY_VERSION 1

/* What a policy sees at each sample. Rates in bytes/s, sizes in bytes. */
struct qmig_policy_sample {
	int64_t t_ms;                /* since the migration started */
	uint64_t pass;               /* 1 during the first full pass */
	uint64_t transferred, remaining, total;
	uint64_t dirty_rate;         /* as measured (after any throttle) */
	uint64_t bandwidth;          /* smoothed */
	int64_t throttle_pct;        /* CPU throttle in force */
	int64_t downtime_limit_ms;   /* in force */
	uint64_t max_bandwidth;      /* in force, 0: unlimited */
	/* How fast the remaining count falls within a pass (bytes/s): above
	 * the bandwidth when zero pages, sent as a few bytes, are being
	 * scanned. 0: unknown (the bandwidth is used). */
	uint64_t drain_rate;
};

enum qmig_verdict {
	QMIG_VERDICT_UNKNOWN,        /* not enough data yet */
	QMIG_VERDICT_CONVERGING,     /* will finish under the downtime limit */
	QMIG_VERDICT_STALLED,        /* no progress over the last passes */
	QMIG_VERDICT_CANNOT_CONVERGE /* dirtying as fast as it sends */
};

/* The precopy model's forecast, with the numbers behind it. */
struct qmig_prediction {
	enum qmig_verdict verdict;
	double dirty_ratio;          /* dirty rate / bandwidth */
	double passes_left;          /* until remaining fits the downtime limit */
	int64_t time_left_ms;        /* -1 when it cannot converge */
	int64_t downtime_ms;         /* expected pause at switchover (now, if it cannot converge) */
	uint64_t total_bytes;        /* expected bytes sent in all, 0 if unbounded */
	int64_t needed_downtime_ms;  /* the limit that would let it converge now */
};

/* Geometric precopy model from one sample: each pass sends what was
 * dirtied during the previous one, bounded by the working set. */
void qmig_predict(const struct qmig_policy_sample *s, struct qmig_prediction *out);
const char *qmig_verdict_name(enum qmig_verdict v);

enum qmig_action_kind {
	QMIG_ACT_SET_DOWNTIME = 1,   /* value: downtime-limit in ms */
	QMIG_ACT_SET_BANDWIDTH,      /* value: max-bandwidth in bytes/s */
	QMIG_ACT_THROTTLE,           /* value: CPU throttle percentage */
	QMIG_ACT_DIRTY_LIMIT,        /* value: per-vCPU dirty limit in MiB/s */
	QMIG_ACT_POSTCOPY,           /* switch to postcopy */
	QMIG_ACT_PAUSE,              /* stop the guest to finish */
	QMIG_ACT_ABORT               /* cancel the migration (it rolls back) */
};

struct qmig_action {
	enum qmig_action_kind kind;
	int64_t value;
	char reason[160];
};

const char *qmig_action_name(enum qmig_action_kind kind);

#define QMIG_POLICY_CONFIG_VERSION 1

/* What the policy may do, and its tunables (0: the policy's default). */
struct qmig_policy_config {
	unsigned int version;
	uint64_t mem_bytes;          /* guest RAM */
	int64_t downtime_limit_ms;   /* the starting limit */
	int64_t max_downtime_ms;     /* the most a policy may raise it to */
	/* predictive: longest acceptable pause-to-finish (0: max_downtime_ms) */
	int64_t max_pause_ms;
	int postcopy_allowed;        /* postcopy-ram is on for this migration */
	int throttle_allowed;        /* may throttle (live predictive: only with --auto-converge) */
	int dirty_limit_allowed;     /* set-vcpu-dirty-limit works (dirty ring) */
	/* Nova */
	int64_t nova_downtime_ms, nova_steps, nova_delay_s_per_gib, nova_timeout_s_per_gib;
	/* KubeVirt */
	int64_t kubevirt_progress_timeout_s, kubevirt_completion_s_per_gib;
	/* Proxmox */
	int64_t proxmox_initial_downtime_ms;
};

#define QMIG_POLICY_CONFIG_INIT {.version = QMIG_POLICY_CONFIG_VERSION}

struct qmig_policy_ops {
	unsigned int version;        /* QMIG_POLICY_VERSION */
	const char *name;
	/* Make the policy's state; 0 or a negative errno. */
	int (*init)(void **state, const struct qmig_policy_config *cfg);
	/* Fill up to max actions, return how many (0: carry on). */
	int (*on_sample)(void *state, const struct qmig_policy_sample *s,
			 const struct qmig_prediction *p, struct qmig_action *out, int max);
	/* Required: runs exactly once per successful init. */
	void (*free)(void *state);
};

/* passive, nova, kubevirt, proxmox, predictive; NULL for another name. */
const struct qmig_policy_ops *qmig_policy_builtin(const char *name);
/* "passive, nova, ...": for help texts. */
const char *qmig_policy_names(void);

/* A plug-in: dlopen path, call qmig_policy_entry(), check the version.
 * *handle is for qmig_policy_unload(). msg says what was wrong. */
int qmig_policy_load(const struct qmig_policy_ops **out, void **handle, const char *path,
		     char *msg, size_t msg_len);
void qmig_policy_unload(void *handle);

/* ---- the simulator ------------------------------------------------------ */

#define QMIG_SIM_OPTS_VERSION 1

struct qmig_sim_opts {
	unsigned int version;
	uint64_t mem_bytes;
	uint64_t wss_bytes;          /* 0: mem_bytes */
	uint64_t dirty_rate;         /* bytes/s the guest writes unthrottled */
	uint64_t bandwidth;          /* bytes/s of the link */
	int64_t downtime_limit_ms;   /* 0: 300 (QEMU's default) */
	uint64_t page_size;          /* 0: 4096 */
	int64_t max_time_ms;         /* 0: 600000 */
	int64_t sample_ms;           /* 0: 100 */
	struct qmig_policy_config policy;
	/* Replay: rates over time instead of the constants above. */
	const int64_t *env_t_ms;
	const uint64_t *env_dirty, *env_bandwidth;
	size_t env_n;
};

#define QMIG_SIM_OPTS_INIT {.version = QMIG_SIM_OPTS_VERSION}

#define QMIG_SIM_MAX_ACTIONS 64

struct qmig_sim_result {
	int converged;
	int aborted;
	int64_t total_ms;
	uint64_t passes;
	uint64_t transferred_bytes;
	int64_t downtime_ms;
	int64_t throttle_pct_max;
	int postcopy;
	int n_actions;
	struct qmig_action actions[QMIG_SIM_MAX_ACTIONS];
	int64_t action_t_ms[QMIG_SIM_MAX_ACTIONS];
};

/* Deterministic: the same options give the same result. */
int qmig_sim_run(const struct qmig_sim_opts *opts, const struct qmig_policy_ops *policy,
		 struct qmig_sim_result *out);

#ifdef __cplusplus
}
#endif
#endif
