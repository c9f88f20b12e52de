/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The namespace helper (namespace.h): what "our own namespace" means, a new mount namespace whose
 * mounts do not propagate back, and a child in a namespace that passes fds and its error message
 * back to the caller. Needs root (unshare(CLONE_NEWNS)); skips without it. */

#include <sched.h>
#include <sys/mount.h>

#include "namespace.h"
#include "test-helpers.h"

static void test_is_own(void) {
        _cleanup_close_ int mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int user = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);

        CHECK(mnt >= 0 && namespace_is_own(mnt, "mnt") == 1, "our mount namespace is our own");
        CHECK(user >= 0 && namespace_is_own(user, "user") == 1, "our user namespace is our own");
        CHECK(mnt >= 0 && namespace_is_own(mnt, "user") == 0, "a mount namespace is not our user namespace");
        CHECK(namespace_join_mount_owner() == 0, "our mount namespace's owner is our user namespace: nothing to join");
}

/* In the child: is it in another mount namespace than the one opened before the fork? Passes an
 * fd of its namespace back. */
static int child_report_ns(void *userdata, int *ret_fds, size_t max_fds) {
        int parent_ns = *(int *) userdata;

        if (max_fds < 1)
                return sx_error(-E2BIG, "no room for an fd");
        if (namespace_is_own(parent_ns, "mnt") != 0)
                return sx_error(-EBADE, "the child shares the parent's mount namespace");
        ret_fds[0] = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        return ret_fds[0] < 0 ? sx_error(negative_errno(), "cannot open the child's namespace: %m") : 1;
}

static int child_fail(void *userdata, int *ret_fds, size_t max_fds) {
        return sx_error(-ENOTRECOVERABLE, "child says: %s", (const char *) userdata);
}

static int child_in_target(void *userdata, int *ret_fds, size_t max_fds) {
        int expected = *(int *) userdata;

        return namespace_is_own(expected, "mnt") == 1 ? 0 : sx_error(-EBADE, "not in the target namespace");
}

static void test_run_in_mntns(void) {
        _cleanup_close_ int own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), child_ns = -EBADF;
        int fds[1] = { -EBADF }, r;

        r = run_in_private_mntns(child_report_ns, &own, fds, 1);
        CHECK(r == 1 && fds[0] >= 0, "a private copy: the child runs in a namespace of its own and passes one fd back");
        child_ns = fds[0];
        CHECK(child_ns >= 0 && namespace_is_own(child_ns, "mnt") == 0, "the fd passed back is the child's namespace, not ours");

        sx_clear_error();
        r = run_in_private_mntns(child_fail, (void *) "broken", NULL, 0);
        CHECK(r == -ENOTRECOVERABLE, "the child's errno comes back: %d", r);
        CHECK(sx_last_error() && streq(sx_last_error(), "child says: broken"), "and its message: %s", strna(sx_last_error()));

        r = run_in_mntns(own, 0, child_in_target, &own, NULL, 0);
        CHECK(r == 0, "joining a given namespace: the child runs in it");
        CHECK(run_in_mntns(-EBADF, 0, child_report_ns, &own, fds, RUN_IN_MNTNS_MAX_FDS + 1) == -E2BIG,
              "more fds than can be passed are refused up front");
}

static void test_new_mount(void) {
        _cleanup_close_ int before = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        pid_t pid = fork();
        int status = 0;

        if (pid == 0) {
                /* In a child: the test process keeps its namespace. Exit code says what failed. */
                if (namespace_new_mount(NAMESPACE_SLAVE) < 0)
                        _exit(2);
                if (namespace_is_own(before, "mnt") != 0)
                        _exit(3);
                /* A mount here must not show up in the namespace we came from (checked below). */
                if (mount("tmpfs", tmpdir, "tmpfs", 0, NULL) < 0)
                        _exit(4);
                if (namespace_join_mount(before) < 0 || namespace_is_own(before, "mnt") != 1)
                        _exit(5);
                _exit(access(T("."), F_OK) == 0 ? 0 : 6);
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "namespace_new_mount(): a namespace of its own, joined back with namespace_join_mount() (exit %d)",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        CHECK(run("mountpoint -q '%s'", tmpdir) != 0, "a mount made in the new (slave) namespace did not propagate back");
}

int main(void) {
        test_setup_output();
        test_is_own();
        if (geteuid() != 0) {
                SKIP("namespace tests need root (unshare(CLONE_NEWNS), setns)");
                return test_result();
        }
        if (tmpdir_create("/tmp/test-namespace-helper-XXXXXX") < 0 || enter_private_mount_namespace() < 0) {
                SKIP("cannot set up a private mount namespace: %m");
                return test_result();
        }
        test_run_in_mntns();
        test_new_mount();
        return test_result();
}
