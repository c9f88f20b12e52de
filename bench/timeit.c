/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* timeit CMD [ARGS...]: run CMD, print its wall time in microseconds on fd 3 (or stderr if fd 3 is
 * not open), exit with its status. The clock covers fork, exec and wait of CMD only. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
        struct timespec a, b;
        pid_t pid;
        int status, r, out = fcntl(3, F_GETFD) >= 0 ? 3 : 2;

        if (argc < 2) {
                fprintf(stderr, "usage: timeit CMD [ARGS...]\n");
                return 2;
        }
        if (out == 3)
                (void) fcntl(3, F_SETFD, FD_CLOEXEC);   /* the command must not inherit it */
        clock_gettime(CLOCK_MONOTONIC, &a);
        r = posix_spawnp(&pid, argv[1], NULL, NULL, argv + 1, environ);
        if (r != 0) {
                fprintf(stderr, "timeit: %s: %s\n", argv[1], strerror(r));
                return 127;
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return 127;
        clock_gettime(CLOCK_MONOTONIC, &b);
        dprintf(out, "%lld\n", (long long) (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}
