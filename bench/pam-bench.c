/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pam-bench N CASE...    CASE = SERVICE:USER[:PATH]
 *
 * Times pam_open_session + pam_close_session in process, N times per case, the cases interleaved
 * (A B C, B C A, C A B, ...). Each iteration runs in a forked child, so that a module that unshares
 * the mount namespace starts from the same namespace every time; pam_start/pam_end and the fork are
 * outside the measured interval. With PATH, the child checks between open and close that PATH
 * exists (an extension's file) and fails otherwise; with PATH "!/usr", that no overlay is on /usr.
 * Prints one line per case: "SERVICE USER median_us min_us p90_us", and exits non-zero if any
 * iteration failed. Built by bench/pam.sh:  cc -O2 -o pam-bench pam-bench.c -lpam */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
        (void) msg;
        (void) data;
        *resp = calloc((size_t) n, sizeof(struct pam_response));
        return *resp ? PAM_SUCCESS : PAM_BUF_ERR;
}

static long long now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (long long) t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int usr_has_overlay(void) {
        char line[4096];
        int found = 0;
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                char mp[1024];
                const char *dash = strstr(line, " - ");
                if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1 && strcmp(mp, "/usr") == 0 && dash)
                        found = strncmp(dash + 3, "overlay ", 8) == 0;  /* the topmost one counts */
        }
        fclose(f);
        return found;
}

/* One iteration in a child: the elapsed ns of open+close on the pipe, exit 0 on success. */
static int iteration(const char *service, const char *user, const char *check, long long *ret_ns) {
        int p[2];
        pid_t pid;
        int status;
        long long ns = -1;

        if (pipe(p) < 0)
                return -1;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                struct pam_conv c = { conv, NULL };
                pam_handle_t *pamh = NULL;
                long long a, b, m = 0;
                int r, ok = 1;

                close(p[0]);
                /* The module's pam_syslog messages go to a memfd, shown if the iteration fails. */
                int err = dup(2), log = memfd_create("pam-bench-log", MFD_CLOEXEC);
                if (log >= 0) {
                        dup2(log, 2);
                        openlog("pam-bench", LOG_PERROR, LOG_AUTHPRIV);
                }
                if (pam_start(service, user, &c, &pamh) != PAM_SUCCESS)
                        _exit(2);
                a = now_ns();
                r = pam_open_session(pamh, 0);
                b = now_ns();
                if (r != PAM_SUCCESS)
                        _exit(3);
                if (check) {
                        if (check[0] == '!')
                                ok = usr_has_overlay() == 0;
                        else
                                ok = access(check, F_OK) == 0;
                }
                if (!ok && log >= 0) {
                        char buf[4096];
                        ssize_t k;
                        FILE *mi = fopen("/proc/self/mountinfo", "re");
                        dprintf(err, "pam-bench: %s/%s: check '%s' failed; module log:\n", service, user, check);
                        lseek(log, 0, SEEK_SET);
                        while ((k = read(log, buf, sizeof(buf))) > 0)
                                (void) !write(err, buf, (size_t) k);
                        dprintf(err, "pam-bench: mounts on /usr and /opt:\n");
                        while (mi && fgets(buf, sizeof(buf), mi))
                                if (strstr(buf, " /usr ") || strstr(buf, " /opt "))
                                        dprintf(err, "  %s", buf);
                        if (mi)
                                fclose(mi);
                }
                m = now_ns();
                r = pam_close_session(pamh, 0);
                m = now_ns() - m + (b - a);
                pam_end(pamh, r);
                if (write(p[1], &m, sizeof(m)) != sizeof(m))
                        _exit(5);
                _exit(r != PAM_SUCCESS ? 4 : ok ? 0 : 6);
        }
        close(p[1]);
        if (read(p[0], &ns, sizeof(ns)) != sizeof(ns))
                ns = -1;
        close(p[0]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "pam-bench: %s/%s: child failed (status 0x%x)\n", service, user, status);
                return -1;
        }
        *ret_ns = ns;
        return 0;
}

static int cmp_ll(const void *a, const void *b) {
        long long x = *(const long long *) a, y = *(const long long *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        int n, ncases = argc - 2, failed = 0;

        if (argc < 3 || (n = atoi(argv[1])) < 1) {
                fprintf(stderr, "usage: pam-bench N SERVICE:USER[:PATH]...\n");
                return 2;
        }
        char *service[ncases], *user[ncases], *check[ncases];
        long long *t[ncases];
        for (int c = 0; c < ncases; c++) {
                service[c] = argv[c + 2];
                user[c] = strchr(service[c], ':');
                if (!user[c]) {
                        fprintf(stderr, "pam-bench: bad case '%s'\n", argv[c + 2]);
                        return 2;
                }
                *user[c]++ = 0;
                check[c] = strchr(user[c], ':');
                if (check[c])
                        *check[c]++ = 0;
                t[c] = calloc((size_t) n, sizeof(long long));
                if (!t[c])
                        return 1;
        }
        /* warm-up: one untimed round */
        for (int c = 0; c < ncases; c++) {
                long long dummy;
                if (iteration(service[c], user[c], check[c], &dummy) < 0)
                        return 1;
        }
        for (int i = 0; i < n; i++)
                for (int k = 0; k < ncases; k++) {
                        int c = (i + k) % ncases;       /* rotate the order every round */
                        if (iteration(service[c], user[c], check[c], &t[c][i]) < 0) {
                                failed = 1;
                                t[c][i] = 0;
                        }
                }
        for (int c = 0; c < ncases; c++) {
                qsort(t[c], (size_t) n, sizeof(long long), cmp_ll);
                printf("%s %s %.1f %.1f %.1f\n", service[c], user[c],
                       t[c][n / 2] / 1000.0, t[c][0] / 1000.0, t[c][n * 9 / 10] / 1000.0);
        }
        return failed;
}
