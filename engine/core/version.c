#include "qmigrate.h"

const char *qmig_version(void)
{
	return QMIG_VERSION;
}
