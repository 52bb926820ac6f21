/*
 * twowriters.c - two descriptors write to one file; the first close
 * commits both writes, and the second close must not return before that
 * commit is durable (issue 9 review: it returned at once, while the
 * first close was still in fdatasync).
 *
 *   twowriters FILE FLAG
 *
 * The daemon runs with tests/slowsync.so preloaded and T4DX_SLOWSYNC=FLAG.
 * Exit 0: the second close returned after the slow fdatasync ended;
 * 1: before; 2: it could not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fa;
static int close_a_rc;

static void *close_a(void *arg)
{
	(void)arg;
	close_a_rc = close(fa);
	return NULL;
}

static bool exists(const char *flag, const char *suffix)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s.%s", flag, suffix);
	return access(path, F_OK) == 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: twowriters FILE FLAG\n");
		return 2;
	}
	fa = open(argv[1], O_WRONLY | O_APPEND);
	int fb = open(argv[1], O_WRONLY | O_APPEND);
	if (fa < 0 || fb < 0 || write(fa, "a", 1) != 1 ||
	    write(fb, "b", 1) != 1) {
		perror(argv[1]);
		return 2;
	}
	int ff = open(argv[2], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (ff < 0) {
		perror(argv[2]);
		return 2;
	}
	close(ff);
	pthread_t t;
	pthread_create(&t, NULL, close_a, NULL);
	/* the first close is in its fdatasync */
	for (int i = 0; i < 10000 && !exists(argv[2], "started"); i++)
		usleep(1000);
	if (!exists(argv[2], "started")) {
		fprintf(stderr, "the first close never reached fdatasync\n");
		return 2;
	}
	int rc = close(fb);
	bool ended = exists(argv[2], "ended");
	pthread_join(t, NULL);
	if (rc || close_a_rc) {
		fprintf(stderr, "close: %s\n", strerror(errno));
		return 2;
	}
	if (!ended) {
		fprintf(stderr, "the second close returned 0 while the first "
			"close's fdatasync was still under way\n");
		return 1;
	}
	return 0;
}
