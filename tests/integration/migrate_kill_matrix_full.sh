# The whole kill matrix (make check-full): kill -9 entering every phase,
# at the destination's stamp-check pause, with --tls in precopy and
# confirm, with --verify=memory at confirm (the destination held paused),
# and entering the rollback of a cancel; see migrate_kill_matrix.sh for
# what is checked after each.
KILL_PHASES="prepare negotiate start precopy postcopy switchover confirm destination:RESUME finish precopy+tls confirm+tls confirm+mem rollback"
export KILL_PHASES
exec sh tests/integration/migrate_kill_matrix.sh
