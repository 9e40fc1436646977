/* holdports ADDR LO HI: listen on every TCP port LO..HI of ADDR (as a
 * process outside qmigrate would) until killed. Prints "ready" when all
 * are held. Used to fill the migration port range in tests. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int lo, hi;

	if (argc != 4 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: holdports ADDR LO HI\n");
		return 2;
	}
	lo = atoi(argv[2]);
	hi = atoi(argv[3]);
	for (int p = lo; p <= hi; p++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		sa.sin_port = htons((unsigned short)p);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(fd, 1) < 0) {
			perror("holdports");
			return 1;
		}
	}
	puts("ready");
	fflush(stdout);
	pause();
	return 0;
}
