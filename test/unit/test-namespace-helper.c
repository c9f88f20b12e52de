/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The namespace helper (namespace.h): what "our own namespace" means, a new mount namespace whose
 * mounts do not propagate back, and a child in a namespace that passes fds and its error message
 * back to the caller. Needs root (unshare(CLONE_NEWNS)); skips without it. */

#include <sched.h>
#include <sys/mount.h>

#include "mountapi.h"
#include "namespace.h"
#include "overlay.h"
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

static int count_mounts(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        int n = 0, c;

        if (!f)
                return -1;
        while ((c = fgetc(f)) != EOF)
                n += c == '\n';
        return n;
}

static int detached_tmpfs(void) {
        _cleanup_close_ int fs = sys_fsopen("tmpfs", FSOPEN_CLOEXEC);

        if (fs < 0 || sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -1;
        return sys_fsmount(fs, FSMOUNT_CLOEXEC, 0);
}

/* Independently of overlay.c: can a detached mount go into a detached tmpfs here? */
static bool nested_supported(void) {
        _cleanup_close_ int a = detached_tmpfs(), b = detached_tmpfs();

        return a >= 0 && b >= 0 && mkdirat(a, "d", 0700) >= 0 && sys_move_mount(b, "", a, "d", MOVE_MOUNT_F_EMPTY_PATH) >= 0;
}

/* mounts_dissolve(): every fd closed, the mount table as before, and the mounts really gone from
 * every namespace (an fd kept inside one can no longer be cloned: its mount is unmounted), not left
 * in the tree they were moved into. */
static void test_mounts_dissolve(void) {
        int fds[6] = { -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF };
        _cleanup_close_ int inside = -EBADF, control = -EBADF, clone = -EBADF, held = -EBADF;
        int before = count_mounts(), made = 0, fd_numbers[4];

        for (size_t i = 0; i < 6; i++)
                if (i != 1 && i != 4 && (fds[i] = detached_tmpfs()) >= 0)
                        made++;
        CHECK(made == 4, "four detached tmpfs mounts, two holes");
        inside = fds[2] >= 0 ? sys_openat2(fds[2], ".", &(struct open_how) { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC }, sizeof(struct open_how)) : -1;
        control = detached_tmpfs();
        clone = control >= 0 ? sys_open_tree(control, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH) : -1;
        CHECK(clone >= 0, "control: a live detached mount can be cloned");
        clone = safe_close(clone);

        held = fds[3] >= 0 ? fcntl(fds[3], F_DUPFD_CLOEXEC, 3) : -1;
        fd_numbers[0] = fds[0], fd_numbers[1] = fds[2], fd_numbers[2] = fds[3], fd_numbers[3] = fds[5];
        mounts_dissolve(fds, 6);
        CHECK(fds[0] < 0 && fds[2] < 0 && fds[3] < 0 && fds[5] < 0, "every fd is set to -EBADF");
        CHECK(fcntl(fd_numbers[0], F_GETFD) < 0 && fcntl(fd_numbers[1], F_GETFD) < 0 && fcntl(fd_numbers[2], F_GETFD) < 0 &&
              fcntl(fd_numbers[3], F_GETFD) < 0, "and really closed");
        /* A second fd of one of the mounts kept it alive had each been closed on its own; moved
         * into the stage and dissolved with it, the mount is gone despite that fd. */
        clone = held >= 0 ? sys_open_tree(held, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH) : -1;
        if (!nested_supported())
                SKIP("this kernel cannot attach a detached mount in a detached tree (before 6.15): one by one");
        else
                CHECK(clone < 0 && errno == EINVAL, "dissolved in one go: a mount held by a second fd is unmounted too (%m)");
        clone = safe_close(clone);
        CHECK(count_mounts() == before, "the mount table is as before (%d lines)", before);
        clone = inside >= 0 ? sys_open_tree(inside, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH) : -1;
        CHECK(clone < 0 && errno == EINVAL, "a dissolved mount cannot be cloned: it is unmounted (%m)");
        mounts_dissolve(fds, 6);        /* all closed: nothing to do */
        mounts_dissolve(NULL, 0);
}

/* A clone of a directory in a shared mount (as a directory extension is) is in the host mount's
 * peer group: nothing may be mounted on it on the way to dissolution, or the mount would
 * propagate into the mount table (a mount on tmpdir/dir). */
static void test_mounts_dissolve_shared(void) {
        int fds[3] = { -EBADF, -EBADF, -EBADF };
        int before;

        if (mount("tmpfs", tmpdir, "tmpfs", 0, NULL) < 0 || mount(NULL, tmpdir, NULL, MS_SHARED, NULL) < 0 ||
            mkdir(T("dir"), 0755) < 0) {
                CHECK(false, "a shared tmpfs on %s: %m", tmpdir);
                return;
        }
        before = count_mounts();
        fds[0] = sys_open_tree(AT_FDCWD, T("dir"), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        fds[1] = detached_tmpfs();
        fds[2] = detached_tmpfs();
        CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0, "a clone of a directory in a shared mount, and two more mounts");
        mounts_dissolve(fds, 3);
        CHECK(count_mounts() == before, "nothing propagated into the mount table (%d lines)", before);
        CHECK(run("mountpoint -q '%s'", T("dir")) != 0, "%s is no mount point", T("dir"));
        (void) umount2(tmpdir, MNT_DETACH);
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
        test_mounts_dissolve();
        test_mounts_dissolve_shared();
        return test_result();
}
