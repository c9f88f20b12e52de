/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The harness shared by the unit tests (each one is its own executable, so everything here is
 * static): checks and skips with counting, the exit code (0 passed, 1 failed, 77 skipped), a temp
 * dir removed at exit and on SIGINT/SIGTERM, shell commands run inside it, loop devices backed by
 * it, and the private mount namespace the mounting tests run in.
 *
 * CHECK() prints one line per check, "ok  : " or "FAIL: " followed by the message; a failing check
 * also shows where it is, the condition and the library's last error message. SKIP() prints
 * "SKIP: " and makes the whole test exit 77 unless a check failed. */

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

#include "mountapi.h"
#include "util.h"

static int failures, skips;

#define CHECK(cond, ...)                                                       \
        do {                                                                   \
                bool _ok = (cond);                                             \
                int _errno = errno;  /* for %m in the message */               \
                printf("%s: ", _ok ? "ok  " : "FAIL");                         \
                errno = _errno;                                                \
                printf(__VA_ARGS__);                                           \
                if (!_ok)                                                      \
                        printf("   [%s:%d: %s; last error: %s]", __FILE__, __LINE__, #cond, \
                               strna(sx_last_error()));                        \
                printf("\n");                                                  \
                if (!_ok)                                                      \
                        failures++;                                            \
        } while (0)

#define SKIP(...)                                                              \
        do {                                                                   \
                int _errno = errno;  /* for %m in the message */               \
                printf("SKIP: ");                                              \
                errno = _errno;                                                \
                printf(__VA_ARGS__);                                           \
                printf("\n");                                                  \
                skips++;                                                       \
        } while (0)

/* Summary line and exit code: 1 if a check failed, else 77 if something was skipped, else 0. */
static inline int test_result(void) {
        printf("%d failure(s), %d skipped\n", failures, skips);
        if (failures > 0)
                return 1;
        return skips > 0 ? 77 : 0;
}

/* Line-buffered output (checks interleave with the library's debug messages on stderr), and
 * SYSEXT_IDMAP_DEBUG=1 turns those on. */
static inline void test_setup_output(void) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (getenv("SYSEXT_IDMAP_DEBUG"))
                sx_debug_enabled = true;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* ---- the test's temp dir ---- */

static char tmpdir[128];       /* set by tmpdir_create() */
static bool have_tmpdir;

static inline void cleanup(void) {
        if (have_tmpdir) {
                _cleanup_free_ char *cmd = NULL;
                if (asprintf_safe(&cmd, "rm -rf '%s'", tmpdir) >= 0 && system(cmd) != 0)
                        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
        }
}

static inline void on_signal(int sig) {
        cleanup();
        _exit(128 + sig);
}

/* Create tmpdir from template (ending in XXXXXX). It is removed with everything in it at exit and
 * on SIGINT or SIGTERM. Returns 0 or a negative errno (errno is set too). */
static inline int tmpdir_create(const char *template) {
        if (strlen(template) >= sizeof(tmpdir))
                return -(errno = ENAMETOOLONG);
        strcpy(tmpdir, template);
        if (!mkdtemp(tmpdir))
                return negative_errno();
        have_tmpdir = true;
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        return 0;
}

/* Path of name in tmpdir; the last 8 results stay valid. */
static inline char *T(const char *name) {
        static char bufs[8][PATH_MAX];
        static unsigned i;
        char *b = bufs[i++ % 8];

        (void) snprintf(b, PATH_MAX, "%s/%s", tmpdir, name);
        return b;
}

/* Run a shell command in tmpdir, output discarded; returns its exit status (128: killed). */
static inline int run(const char *fmt, ...) _printf_(1, 2);
static inline int run(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL, *full = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cmd, fmt, ap);
        va_end(ap);
        if (r < 0)
                abort();
        if (asprintf_safe(&full, "cd '%s' && { %s; } >/dev/null 2>&1", tmpdir, cmd) < 0)
                abort();
        r = system(full);
        return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

static inline bool have(const char *prog) {
        return run("command -v %s", prog) == 0;
}

/* Number of loop devices whose backing file lies in tmpdir. Autoclear may complete just after the
 * last close, so poll a little before declaring a leak. */
static inline int loops_in_tmpdir(void) {
        int n = 0;

        for (int attempt = 0; attempt < 50; attempt++) {
                _cleanup_(closedirp) DIR *d = opendir("/sys/block");
                struct dirent *de;

                n = 0;
                while (d && (de = readdir(d))) {
                        _cleanup_free_ char *p = NULL, *c = NULL;
                        if (!startswith(de->d_name, "loop"))
                                continue;
                        if (asprintf_safe(&p, "/sys/block/%s/loop/backing_file", de->d_name) < 0)
                                abort();
                        if (read_full_file_at(AT_FDCWD, p, 4096, &c, NULL) >= 0 && startswith(c, tmpdir))
                                n++;
                }
                if (n == 0)
                        break;
                usleep(20 * 1000);
        }
        return n;
}

/* ---- misc ---- */

static inline int count_fds(void) {
        _cleanup_(closedirp) DIR *d = opendir("/proc/self/fd");
        int n = 0;

        while (d && readdir(d))
                n++;
        return n;
}

/* Does the library's last error message mention path? */
static inline bool error_names(const char *path) {
        const char *e = sx_last_error();
        return e && strstr(e, path);
}

/* ---- mounting ---- */

/* Mount tests must not touch the host's mount table, even by accident: private namespace. Returns
 * 0 or a negative errno (errno is set too). */
static inline int enter_private_mount_namespace(void) {
        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        /* "none": the type is ignored for propagation changes, but valgrind insists on a string */
        if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        return 0;
}

static inline bool new_mount_api_works(void) {
        int fd = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);

        if (fd < 0)
                return errno != ENOSYS;
        close(fd);
        return true;
}

/* For a root test with loop devices: enter a private mount namespace and make sure the new mount
 * API works. Returns whether mount tests can run; if not, a SKIP says why. */
static inline bool mount_tests_possible(void) {
        if (enter_private_mount_namespace() < 0) {
                SKIP("mount tests: cannot enter a private mount namespace: %m");
                return false;
        }
        if (!new_mount_api_works()) {
                SKIP("mount tests: new mount API unavailable (running under valgrind < 3.20?)");
                return false;
        }
        return true;
}
