/* A scripted fake QMP peer, for what a real QEMU will not do: garbage,
 * huge or deep messages, wrong ids, silence, floods, early closes.
 * The peer is a child process serving one connection on a unix socket in
 * a private temp dir; the script runs there with the accepted socket. */
#ifndef QMIG_FAKEPEER_H
#define QMIG_FAKEPEER_H

#include <stddef.h>
#include <sys/types.h>

struct fakepeer {
	pid_t pid;
	char dir[64];
	char path[100];
};

typedef void (*fakepeer_script)(int fd, void *arg);

/* Listen, fork, and run script on the first connection in the child. */
int fakepeer_start(struct fakepeer *fp, fakepeer_script script, void *arg);
/* Kill the child if still there, reap it, remove the socket and dir.
 * Returns the child's exit status (or -1 if it had to be killed). */
int fakepeer_stop(struct fakepeer *fp);

/* Helpers for scripts (child side; they _exit(3) on socket errors). */
void fp_send(int fd, const char *s);
void fp_send_n(int fd, const void *p, size_t n);
/* Read one command (our client ends each with CRLF) into buf; returns its
 * id, or -1 on eof. */
long fp_read_command(int fd, char *buf, size_t len);
/* Greeting (with oob) and the qmp_capabilities exchange. */
void fp_handshake(int fd);
/* Received fd from the last fp_read_command with SCM_RIGHTS, or -1. */
extern int fp_last_fd;

#endif
