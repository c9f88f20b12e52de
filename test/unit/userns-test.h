/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* User namespaces made for the broker's tests (test-broker, test-userns-check): created by a child
 * running as another uid, maps written by the test (root). */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static int write_proc(pid_t pid, const char *file, const char *text) {
        char path[64];
        int fd, r = 0;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, text, strlen(text)) != (ssize_t) strlen(text))
                r = -errno;
        close(fd);
        return r;
}

/* A user namespace created by a child running as uid/gid (nested: one level below another one
 * mapping uid/gid to 0); maps written by us (root) unless NULL. Returns the namespace fd. */
static int make_userns(uid_t uid, gid_t gid, bool nested, const char *uid_map, const char *gid_map) {
        int ready[2], go[2], fd = -EBADF, levels = nested ? 2 : 1;
        char c = 0, path[64], m[2][64];
        pid_t pid;

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                close(ready[0]);
                close(go[1]);
                signal(SIGTERM, SIG_DFL);
                if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(1);
                /* A nested namespace needs the creator's ids mapped in the one it is created in. */
                for (int i = 0; i < levels; i++)
                        if (unshare(CLONE_NEWUSER) < 0 || write(ready[1], "x", 1) != 1 || read(go[0], &c, 1) < 0)
                                _exit(1);
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        snprintf(m[0], sizeof(m[0]), "0 %u 1\n", (unsigned) uid);
        snprintf(m[1], sizeof(m[1]), "0 %u 1\n", (unsigned) gid);
        for (int i = 0; i < levels; i++) {
                if (read(ready[0], &c, 1) != 1)
                        break;
                if (i + 1 < levels) {
                        if (write_proc(pid, "uid_map", m[0]) < 0 || write_proc(pid, "gid_map", m[1]) < 0 ||
                            write(go[1], "g", 1) != 1)
                                break;
                        continue;
                }
                snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if ((uid_map && write_proc(pid, "uid_map", uid_map) < 0) ||
                    (gid_map && write_proc(pid, "gid_map", gid_map) < 0))
                        fd = safe_close(fd);
        }
        close(ready[0]);
        close(go[1]);
        (void) waitpid(pid, NULL, 0);
        return fd;
}
