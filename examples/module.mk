# examples/: a convergence policy plug-in, built with the project.
EXAMPLE_PLUGINS += build/examples/policy-plugin/ladder.so

build/examples/policy-plugin/%.so: examples/policy-plugin/%.c engine/qmig_policy.h
	$(quiet) CC-SO $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c99 -Wall -Wextra -Werror -shared -fPIC -Iengine -o $@ $<
