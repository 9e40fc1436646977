# tools/: the qmigrate command line.
TOOL_SRCS += tools/qmigrate.c tools/util.c tools/cmd_qmp.c tools/cmd_tls.c
MAN_PAGES += docs/qmigrate.1
TOOL_SRCS += tools/cmd_launch.c tools/cmd_verify.c
TOOL_SRCS += tools/cmd_migrate.c tools/job.c tools/cmd_job.c
TOOL_SRCS += tools/cmd_caps.c
TOOL_SRCS += tools/cmd_simulate.c tools/trace.c
TOOL_SRCS += tools/cmd_doctor.c
TOOL_SRCS += tools/cmd_bench.c tools/bench_svg.c tools/bench_stats.c tools/bench_qemu.c
# Two hosts on one machine: the bench's link=RATE and tests/netns.sh.
TOOL_SRCS += tools/netns.c
TOOL_SRCS += tools/cmd_preflight.c
# The job control socket: its unit test links the server itself.
UNIT_SRCS += tests/unit/test_job.c tools/job.c
ITEST_SCRIPTS += tests/integration/migrate_steer.sh
# Recovery of migrations whose qmigrate died, from their journals.
TOOL_SRCS += tools/cmd_recover.c
TOOL_SRCS += tools/cmd_save.c tools/cmd_update.c
# The destination agent (qmigrate agent) and migrations to other hosts.
TOOL_SRCS += tools/cmd_agent.c tools/agent_conn.c tools/agent_job.c tools/agent_profile.c tools/agent_src.c
ITEST_SCRIPTS += tests/integration/agent_migrate.sh tests/integration/agent_refuse.sh \
	tests/integration/agent_queue.sh tests/integration/agent_kill.sh \
	tests/integration/agent_ssh.sh tests/integration/agent_postcopy.sh
ITEST_SCRIPTS += tests/integration/agent_tls_remote.sh tests/integration/agent_kill_phases.sh \
	tests/integration/agent_storage.sh tests/integration/agent_options.sh
