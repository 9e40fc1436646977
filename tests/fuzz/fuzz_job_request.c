/* libFuzzer: the job control socket's request parser (tools/job.c), any
 * bytes a local client could write. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job_request rq;
	char err[128];

	memset(&rq, 0xa5, sizeof(rq));
	err[0] = 0;
	if (job_parse_request((const char *)data, size, &rq, err, sizeof(err)) < 0) {
		if (!err[0])
			abort(); /* a refusal says why */
	} else if (rq.kind == JOB_REQ_SET &&
		   (!memchr(rq.name, 0, sizeof(rq.name)) || !memchr(rq.value, 0, sizeof(rq.value)))) {
		abort(); /* names and values are terminated strings */
	}
	return 0;
}
