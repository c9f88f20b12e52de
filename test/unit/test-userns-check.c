/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <grp.h>
#include <sched.h>

#include "subid.h"
#include "test-helpers.h"
#include "userns-test.h"
#include "userns-check.h"

/* Throwaway ids nobody on a test machine uses. */
#define U1 UINT32_C(61001)
#define U2 UINT32_C(61002)
#define G1 UINT32_C(61101)

static void test_subid_parse(void) {
        static const char text[] =
                "# comment\n"
                "\n"
                "alice:100000:65536\n"
                "61001:200000:10\n"
                "61001:300000:0\n"              /* count 0 */
                "61001:4294967290:10\n"         /* beyond the last id */
                "61001:x:10\n"                  /* not a number */
                "61001:+5:10\n"
                "61001:400000\n"                /* a field missing */
                "61001:500000:1:extra\n"
                "bob:600000:65536\n";
        _cleanup_free_ SubidRange *v = NULL;
        size_t n = 0;

        CHECK(subid_parse(text, "alice", U1, &v, &n) == 0 && n == 2, "subid: alice/61001 get 2 ranges (got %zu)", n);
        CHECK(n == 2 && v[0].start == 100000 && v[0].count == 65536 && v[1].start == 200000 && v[1].count == 10,
              "subid: by name and by number, malformed lines skipped");
        free(v);
        v = NULL;
        CHECK(subid_parse(text, NULL, U2, &v, &n) == 0 && n == 0, "subid: someone else gets none");
}

static void test_entitled(void) {
        SubidRange r[] = { { 100000, 10 }, { 100010, 5 }, { 200000, 1 } };

        CHECK(id_range_entitled(1000, 1, 1000, r, 3), "own id");
        CHECK(!id_range_entitled(1000, 2, 1000, r, 3), "own id + 1");
        CHECK(id_range_entitled(100000, 15, 1000, r, 3), "two adjacent ranges as one");
        CHECK(!id_range_entitled(100000, 16, 1000, r, 3), "one past the adjacent ranges");
        CHECK(!id_range_entitled(0, 1, 1000, r, 3), "root");
        CHECK(!id_range_entitled(UINT32_MAX - 1, 2, 1000, r, 3), "the end of the id space");
        CHECK(id_range_entitled(200000, 1, 1000, r, 3) && !id_range_entitled(199999, 2, 1000, r, 3),
              "single-id range");
}


static char map1[64], map1g[64];

static void check_refused(int fd, uid_t uid, gid_t gid, const char *root, const char *what) {
        int r = userns_check(fd, uid, gid, 0, root);
        const char *e = sx_last_error();

        CHECK(r == -EPERM && e && startswith(e, "namespace"), "refused: %s (r=%d: %s)", what, r, strna(e));
}

static void test_basic(void) {
        _cleanup_close_ int mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int self = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int ok = make_userns(U1, G1, false, map1, map1g);
        _cleanup_close_ int unwritten = make_userns(U1, G1, false, NULL, NULL);
        _cleanup_close_ int half = make_userns(U1, G1, false, map1, NULL);
        _cleanup_close_ int nested = make_userns(U1, G1, true, NULL, NULL);
        _cleanup_close_ int root_map = make_userns(U1, G1, false, "0 0 1\n", map1g);
        _cleanup_close_ int wide = make_userns(U1, G1, false, "0 61001 2\n", map1g);
        _cleanup_close_ int gid_root = make_userns(U1, G1, false, map1, "0 0 1\n");
        UsernsMaps *m = calloc(1, sizeof(UsernsMaps));

        CHECK(ok >= 0 && unwritten >= 0 && half >= 0 && nested >= 0 && root_map >= 0 && wide >= 0 && gid_root >= 0,
              "namespaces made by uid %u", (unsigned) U1);
        check_refused(-EBADF, U1, G1, NULL, "no fd");
        check_refused(mnt, U1, G1, NULL, "a mount namespace fd");
        check_refused(mnt, 0, 0, NULL, "a mount namespace fd, root caller");
        check_refused(self, U1, G1, NULL, "the daemon's own namespace");
        check_refused(self, 0, 0, NULL, "the daemon's own namespace, root caller");
        CHECK(userns_check(ok, U1, G1, 0, NULL) == 0, "own namespace mapping own uid/gid: allowed");
        CHECK(m && userns_read_maps_isolated(ok, m) == 0 && m->n_uid == 1 && m->uid[0].from == 0 && m->uid[0].to == U1 &&
              m->uid[0].count == 1 && m->n_gid == 1 && m->gid[0].to == G1, "maps read as outside ids");
        CHECK(userns_check(ok, 0, 0, 0, NULL) == 0, "root caller: anyone's namespace");
        check_refused(ok, U2, G1, NULL, "another uid's namespace");
        check_refused(unwritten, U1, G1, NULL, "maps not written");
        check_refused(half, U1, G1, NULL, "gid_map not written");
        check_refused(nested, U1, G1, NULL, "nested namespace");
        CHECK(userns_check(nested, 0, 0, 0, NULL) == -EPERM, "nested, unwritten: refused for root too (no maps)");
        check_refused(root_map, U1, G1, NULL, "uid_map naming root");
        CHECK(userns_check(root_map, 0, 0, 0, NULL) == 0, "uid_map naming root: fine for a root caller");
        check_refused(wide, U1, G1, NULL, "uid_map one id past the own uid");
        check_refused(gid_root, U1, G1, NULL, "gid_map naming root");
        free(m);
}

/* With a pidfd of the process that connected, that process is judged, never whoever has its pid
 * number now: a child in the namespace, alive, passes the "in it" test (and then fails for want of
 * a user record of the owner, 61001); its pidfd after it died fails that test even with the pid of
 * a live process in the namespace. */
static bool ns_same_for_test(int a, int b) {
        struct stat sa, sb;
        return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void test_delegated_pidfd(int userns_fd) {
        _cleanup_close_ int dead_fd = -EBADF, live_fd = -EBADF;
        pid_t dead, live;
        int r;

        dead = fork();
        if (dead == 0)
                _exit(0);
        dead_fd = sys_pidfd_open(dead, 0);
        (void) waitpid(dead, NULL, 0);
        live = fork();
        if (live == 0) {
                if (setns(userns_fd, CLONE_NEWUSER) < 0)
                        _exit(1);
                pause();
                _exit(0);
        }
        live_fd = sys_pidfd_open(live, 0);
        CHECK(dead_fd >= 0 && live_fd >= 0, "pidfds of a dead and a live process");
        for (int i = 0; i < 100; i++) {         /* until the child has joined the namespace */
                r = userns_check_caller(userns_fd, 100005, 300005, 0, live_fd, tmpdir);
                if (!strstr(strna(sx_last_error()), "nor in it"))
                        break;
                usleep(10000);
        }
        CHECK(r == -EPERM && strstr(strna(sx_last_error()), "no user record"), "pidfd of a live process in the namespace: in it (%s)",
              strna(sx_last_error()));
        r = userns_check_caller(userns_fd, 100005, 300005, live, dead_fd, tmpdir);
        CHECK(r == -EPERM && strstr(strna(sx_last_error()), "has exited"), "pidfd of an exited process, the pid of a live one: refused (%s)",
              strna(sx_last_error()));
        /* The fallback for kernels before 6.11: the same namespace while it lives, -ESRCH after. */
        _cleanup_close_ int by_proc = userns_of_pidfd_by_proc(live_fd);
        _cleanup_close_ int by_proc_dead = userns_of_pidfd_by_proc(dead_fd);
        CHECK(by_proc >= 0 && ns_same_for_test(by_proc, userns_fd), "fdinfo + /proc: the live process's namespace");
        CHECK(by_proc_dead == -ESRCH, "fdinfo + /proc: an exited process has none (%d)", by_proc_dead);
        (void) kill(live, SIGKILL);
        (void) waitpid(live, NULL, 0);
        int gone = userns_of_pidfd_by_proc(live_fd);
        CHECK(gone == -ESRCH, "fdinfo + /proc: none once it exited (%d)", gone);
        r = userns_check_caller(userns_fd, 100005, 300005, 0, live_fd, tmpdir);
        CHECK(r == -EPERM && strstr(strna(sx_last_error()), "has exited"), "the same pidfd once it exited: refused (%s)",
              strna(sx_last_error()));
}

static void test_subid_files(void) {
        _cleanup_close_ int sub = make_userns(U1, G1, false, "0 61001 1\n1 100000 65536\n", "0 61101 1\n1 300000 1000\n");
        _cleanup_close_ int over = make_userns(U1, G1, false, "0 61001 1\n1 100000 65537\n", map1g);
        _cleanup_free_ SubidRange *v = NULL;
        _cleanup_free_ char *why = NULL;
        size_t n = 0;

        CHECK(sub >= 0 && over >= 0, "subuid-mapped namespaces made");
        CHECK(mkdir(T("etc"), 0755) == 0, "etc/");
        CHECK(write_string_at(AT_FDCWD, T("etc/subuid"), "# test\n61001:100000:65536\n", 0644) >= 0 &&
              write_string_at(AT_FDCWD, T("etc/subgid"), "61001:300000:1000\n", 0644) >= 0, "subuid/subgid written");
        CHECK(userns_check(sub, U1, G1, 0, tmpdir) == 0, "subuid/subgid ranges: allowed");
        uid_t owner = 0;
        CHECK(subid_owner(tmpdir, "etc/subuid", 100005, &owner) == 1 && owner == 61001, "subid_owner: a subordinate uid's user");
        CHECK(subid_owner(tmpdir, "etc/subuid", 165536, &owner) == 0 && subid_owner(tmpdir, "etc/subuid", 99999, &owner) == 0,
              "subid_owner: just past either end of the range: nobody's");
        /* A subordinate uid of the owner is served as the owner only from inside the namespace. */
        CHECK(userns_check(sub, 100005, 300005, getpid(), tmpdir) == -EPERM, "a uid the namespace maps, calling from outside it: refused");
        CHECK(userns_check(sub, 100005, 300005, 0, tmpdir) == -EPERM, "a uid the namespace maps, no pid: refused");
        CHECK(userns_check(sub, 99, 99, getpid(), tmpdir) == -EPERM, "neither owner nor mapped: refused");
        test_delegated_pidfd(sub);
        check_refused(sub, U1, G1, NULL, "the same without the files (host has none for this uid)");
        check_refused(over, U1, G1, tmpdir, "one id past the subuid range");
        CHECK(chmod(T("etc/subuid"), 0666) == 0, "subuid made world-writable");
        CHECK(subid_load(tmpdir, "etc/subuid", U1, &v, &n, &why) == 0 && n == 0 && why, "world-writable file ignored: %s",
              strna(why));
        check_refused(sub, U1, G1, tmpdir, "world-writable subuid");
        CHECK(chmod(T("etc/subuid"), 0644) == 0 && chown(T("etc/subuid"), U1, 0) == 0, "subuid owned by the user");
        check_refused(sub, U1, G1, tmpdir, "subuid owned by the user");
        CHECK(chown(T("etc/subuid"), 0, 0) == 0 && chmod(T("etc"), 0777) == 0, "etc/ world-writable");
        check_refused(sub, U1, G1, tmpdir, "subuid in a world-writable directory");
        CHECK(chmod(T("etc"), 0755) == 0 && userns_check(sub, U1, G1, 0, tmpdir) == 0, "restored: allowed again");
        CHECK(unlink(T("etc/subgid")) == 0, "subgid removed");
        check_refused(sub, U1, G1, tmpdir, "gid range without a subgid file");
}

int main(void) {
        test_setup_output();
        test_subid_parse();
        test_entitled();
        if (geteuid() != 0) {
                SKIP("namespace checks need root (namespaces owned by other uids)");
                return test_result();
        }
        /* /run is root's and not world-writable, so a subuid file below it can count. */
        if (tmpdir_create("/run/test-userns-check.XXXXXX") < 0 || chmod(tmpdir, 0755) < 0) {
                SKIP("cannot create a temp dir in /run: %m");
                return test_result();
        }
        snprintf(map1, sizeof(map1), "0 %u 1\n", (unsigned) U1);
        snprintf(map1g, sizeof(map1g), "0 %u 1\n", (unsigned) G1);
        test_basic();
        test_subid_files();
        return test_result();
}
