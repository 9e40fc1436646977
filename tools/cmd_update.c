#include "cli.h"
int cmd_update(int argc, char **argv) { (void)argc; (void)argv; return 1; }
