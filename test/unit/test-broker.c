/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The broker library as root in a private mount namespace: MountImage on erofs images for a
 * namespace made here, trust by inode, the layer store and its gc, MountDirectory's modes and
 * refusals. */

#include <grp.h>
#include <sched.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "broker.h"
#include "idmap.h"
#include "test-helpers.h"
#include "userns-test.h"

#define U1 UINT32_C(61001)
#define U2 UINT32_C(61002)
#define G1 UINT32_C(61101)



static bool fd_is_detached(int fd) {
        _cleanup_free_ char *info = NULL, *mi = NULL, *needle = NULL;
        char path[64];
        const char *p;
        unsigned long id;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%i", fd);
        if (read_full_file_at(AT_FDCWD, path, 65536, &info, NULL) < 0 || !(p = strstr(info, "mnt_id:")) ||
            sscanf(p, "mnt_id: %lu", &id) != 1)
                return false;
        if (read_full_file_at(AT_FDCWD, "/proc/self/mountinfo", 16 << 20, &mi, NULL) < 0 ||
            asprintf_safe(&needle, "\n%lu ", id) < 0)
                return false;
        return !strstr(mi, needle) && !startswith(mi, needle + 1);
}

static bool mount_flags_ok(int fd) {
        struct statvfs sv;

        return fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY) && (sv.f_flag & ST_NOSUID) && (sv.f_flag & ST_NODEV);
}

static uid_t owner_of(int dir_fd, const char *name) {
        struct stat st;

        return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? (uid_t) -1 : st.st_uid;
}

static BrokerTarget *target_for(const BrokerCaller *who, const char *uid_map, const char *gid_map) {
        BrokerTarget *t = NULL;
        int fd = make_userns(who->uid ?: U1, who->gid ?: G1, false, uid_map, gid_map);

        if (fd < 0 || broker_target_open(who, fd, &t) < 0)
                return NULL;
        return t;
}

static int open_ro(const char *p) {
        return open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
}

static void test_image(const BrokerConfig *cfg, BrokerLayerStore *store) {
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_close_ int fd = open_ro(T("root/etc/extensions/foo.raw"));
        BrokerImageResult a = {}, b = {};
        struct stat sa = {}, sb = {};
        int r;

        CHECK(t && fd >= 0, "target namespace and trusted image");
        if (!t || fd < 0)
                return;
        r = broker_mount_image(cfg, &who, t, fd, NULL, store, &a);
        CHECK(r == 0 && a.n_partitions == 1 && streq(a.partitions[0].designator, "root"), "trusted erofs image mounted (r=%d)", r);
        if (r < 0)
                return;
        BrokerPartition *p = &a.partitions[0];
        CHECK(a.trusted && streq(a.image_name, "foo") && streq(p->fstype, "erofs") && p->partno == -1,
              "result: trusted, name foo, erofs, bare (trust=%s, policy=%s)", a.trust, strna(a.policy_used));
        CHECK(p->store_key && startswith(p->store_key, "file:") && p->new_pinned_fd >= 0 && broker_store_size(store) == 1,
              "a new superblock, pinned under %s", strna(p->store_key));
        CHECK(fd_is_detached(p->mount_fd), "the clone is detached");
        CHECK(mount_flags_ok(p->mount_fd), "the clone is read-only, nosuid, nodev");
        CHECK(owner_of(p->mount_fd, "usr/lib/extension-release.d/extension-release.foo") == U1,
              "idmapped: on-disk root shows as the namespace's root, uid %u (got %d)", (unsigned) U1,
              (int) owner_of(p->mount_fd, "usr/lib/extension-release.d/extension-release.foo"));
        CHECK(owner_of(p->mount_fd, "usr/share/other") == IDMAP_NOBODY_ID, "idmapped: an unmapped owner shows as nobody");
        r = broker_mount_image(cfg, &who, t, fd, NULL, store, &b);
        CHECK(r == 0 && b.n_partitions == 1 && b.partitions[0].new_pinned_fd < 0 && broker_store_size(store) == 1 &&
              streq(strna(b.partitions[0].store_key), strna(p->store_key)), "second call: the store's superblock reused");
        CHECK(r == 0 && fstat(p->mount_fd, &sa) == 0 && fstat(b.partitions[0].mount_fd, &sb) == 0 && sa.st_dev == sb.st_dev &&
              p->mount_fd != b.partitions[0].mount_fd, "same st_dev, a clone of its own");

        broker_image_result_done(&a);
        broker_image_result_done(&b);
}

/* Last: it changes foo.raw's ctime, which the other tests' store keys hold. */
static void test_image_rewritten(const BrokerConfig *cfg) {
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_(broker_store_freep) BrokerLayerStore *store = NULL;
        _cleanup_close_ int fd = open_ro(T("root/etc/extensions/foo.raw"));
        BrokerImageResult a = {};
        struct stat sa = {};
        int r;

        CHECK(t && fd >= 0 && broker_store_new(&store) >= 0, "target, image, store");
        if (!t || fd < 0 || !store)
                return;
        r = broker_mount_image(cfg, &who, t, fd, NULL, store, &a);
        CHECK(r == 0 && a.n_partitions == 1 && a.partitions[0].store_key && fstat(a.partitions[0].mount_fd, &sa) == 0,
              "trusted image pinned (r=%d)", r);
        if (r < 0)
                return;
        const char *key = a.partitions[0].store_key;

        /* Rewritten in place with size and mtime kept (cp + touch -r): ctime moves, so the key does. */
        BrokerImageResult c = {};
        struct stat before, sc = {};
        struct timespec keep[2];
        CHECK(fstat(fd, &before) == 0, "stat of the image");
        keep[0] = before.st_atim;
        keep[1] = before.st_mtim;
        usleep(20 * 1000);      /* ctime has the file system's granularity */
        CHECK(futimens(fd, keep) == 0, "mtime set back (ctime moves)");
        r = broker_mount_image(cfg, &who, t, fd, NULL, store, &c);
        CHECK(r == 0 && c.n_partitions == 1 && c.partitions[0].new_pinned_fd >= 0 &&
              !streq(strna(c.partitions[0].store_key), key),
              "same size and mtime, new ctime: a new key (%s) and superblock", strna(c.partitions[0].store_key));
        CHECK(r == 0 && fstat(c.partitions[0].mount_fd, &sc) == 0 && sc.st_dev != sa.st_dev, "... with an st_dev of its own");
        broker_image_result_done(&a);
        broker_image_result_done(&c);
}

static void check_image_refused(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *t, int fd, int want,
                                const char *what) {
        BrokerImageResult res = {};
        int r = broker_mount_image(cfg, who, t, fd, NULL, NULL, &res);

        CHECK(r == want && res.n_partitions == 0, "refused: %s (r=%d, want %d: %s)", what, r, want, strna(sx_last_error()));
        broker_image_result_done(&res);
}

static void test_image_refusals(BrokerConfig *cfg) {
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_close_ int home = open_ro(T("home/foo.raw")), owned = open_ro(T("root/etc/extensions/bar.raw"));
        _cleanup_close_ int dir = open(T("root"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int trusted = open_ro(T("root/etc/extensions/foo.raw"));
        BrokerImageResult res = {};
        int r;

        CHECK(t && home >= 0 && owned >= 0 && dir >= 0, "untrusted images opened");
        if (!t)
                return;
        check_image_refused(cfg, &who, t, home, -ERFKILL, "an unsigned image outside the extension directories");
        check_image_refused(cfg, &who, t, owned, -ERFKILL, "an unsigned image in /etc/extensions owned by the user");
        check_image_refused(cfg, &who, t, dir, -EBADFD, "a directory fd");
        check_image_refused(cfg, &who, NULL, trusted, -EACCES, "no namespace from a non-root caller");
        r = broker_mount_image(cfg, &who, t, trusted, "root=signed+absent:usr=signed+absent", NULL, &res);
        CHECK(r == -ERFKILL, "the caller's policy tightens the administrator's (r=%d: %s)", r, strna(sx_last_error()));
        broker_image_result_done(&res);
        r = broker_mount_image(cfg, &who, t, trusted, "root=bogus", NULL, &res);
        CHECK(r == -EBADRQC, "a malformed caller policy (r=%d)", r);
        cfg->allow_unsigned_untrusted = true;
        r = broker_mount_image(cfg, &who, t, home, NULL, NULL, &res);
        CHECK(r == 0 && !res.trusted && res.n_partitions == 1 && !res.partitions[0].store_key && res.trust_reason,
              "AllowUnsignedUntrusted=yes: mounted, not shared (%s)", strna(res.trust_reason));
        cfg->allow_unsigned_untrusted = false;
        broker_image_result_done(&res);
}

static void test_directory(void) {
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF }, root = { .uid = 0, .gid = 0, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_(broker_target_freep) BrokerTarget *wide = target_for(&root, "0 200000 65536\n", "0 200000 65536\n");
        _cleanup_close_ int mine = open(T("dirs/mine"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int theirs = open(T("dirs/theirs"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int foreign = open(T("dirs/mine/foreign"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int foreign2 = open(T("dirs/theirs/foreign"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int file = open_ro(T("root/etc/extensions/foo.raw"));
        int m = -EBADF, r;

        CHECK(t && wide && mine >= 0 && theirs >= 0 && foreign >= 0 && foreign2 >= 0, "directories and namespaces");
        if (!t || !wide)
                return;
        r = broker_mount_directory(&who, t, mine, NULL, &m);
        CHECK(r == 0 && fd_is_detached(m) && mount_flags_ok(m), "own directory, auto: a detached ro,nodev,nosuid clone");
        CHECK(r == 0 && owner_of(m, "file") == U1 && owner_of(m, "rootfile") == IDMAP_NOBODY_ID,
              "auto = root: the caller's files are the namespace's root (uid %u outside), others nobody", (unsigned) U1);
        m = safe_close(m);
        r = broker_mount_directory(&who, t, mine, "identity", &m);
        CHECK(r == 0 && owner_of(m, "file") == U1 && owner_of(m, "rootfile") == 0, "identity: ids as on disk");
        m = safe_close(m);
        r = broker_mount_directory(&who, t, theirs, NULL, &m);
        CHECK(r == -EPERM, "refused: another user's directory (r=%d: %s)", r, strna(sx_last_error()));
        r = broker_mount_directory(&who, t, foreign2, "foreign", &m);
        CHECK(r == -EPERM, "refused: foreign range below another user's directory (r=%d)", r);
        r = broker_mount_directory(&who, t, foreign, "foreign", &m);
        CHECK(r == -EINVAL, "foreign below the caller's: the namespace must map 65536 ids (r=%d: %s)", r, strna(sx_last_error()));
        r = broker_mount_directory(&root, wide, foreign, NULL, &m);
        CHECK(r == 0 && owner_of(m, "f") == 200005, "foreign (auto) for root: foreign+5 shows as 200005 (got %d)",
              r == 0 ? (int) owner_of(m, "f") : -1);
        m = safe_close(m);
        r = broker_mount_directory(&who, t, file, NULL, &m);
        CHECK(r == -EBADFD, "refused: not a directory (r=%d)", r);
        r = broker_mount_directory(&who, t, mine, "bogus", &m);
        CHECK(r == -EINVAL, "refused: unknown mode (r=%d)", r);
        r = broker_mount_directory(&who, NULL, mine, NULL, &m);
        CHECK(r == -EACCES, "refused: no namespace from a non-root caller (r=%d)", r);
}

static void test_store(BrokerLayerStore *store) {
        _cleanup_strv_free_ char **removed = NULL;
        _cleanup_close_ int clone = -EBADF;
        const char *key = NULL;
        int pinned = -EBADF, r;

        CHECK(broker_store_size(store) == 1 && broker_store_get(store, 0, &key, &pinned) == 0 && pinned >= 0,
              "one entry pinned: %s", strna(key));
        if (pinned < 0)
                return;
        _cleanup_free_ char *k = strdup(key);
        CHECK(broker_store_get(store, 1, NULL, NULL) == -ENXIO, "get beyond the end");
        clone = sys_open_tree(pinned, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        CHECK(clone >= 0 && mkdir(T("attach"), 0755) == 0 && sys_move_mount(clone, "", AT_FDCWD, T("attach"), MOVE_MOUNT_F_EMPTY_PATH) == 0,
              "a clone attached in our namespace");
        r = broker_store_gc(store, &removed);
        CHECK(r == 0 && broker_store_size(store) == 1, "gc: an attached superblock is kept (r=%d)", r);
        CHECK(umount2(T("attach"), MNT_DETACH) == 0, "detached again");
        r = broker_store_gc(store, &removed);
        CHECK(r == 1 && broker_store_size(store) == 1 && broker_store_lookup_dormant(store, k, NULL, NULL) == 1 &&
              strv_length(removed) == 1 && streq(removed[0], k),
              "gc: in no mount table, but an fd still holds the unmounted clone: the pin closed, the entry dormant (r=%d)", r);
        clone = safe_close(clone);
        removed = strv_free(removed);
        r = broker_store_gc(store, &removed);
        CHECK(r == 1 && broker_store_size(store) == 0 && strv_length(removed) == 1 && streq(removed[0], k),
              "gc: used nowhere: dropped (r=%d)", r);
        CHECK(broker_store_insert(store, "k", -EBADF) == -EINVAL && broker_store_remove(store, "nope") == 0, "insert/remove edge cases");
}

static void test_overlay(const BrokerConfig *cfg, BrokerLayerStore *store) {
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_close_ int fd = open_ro(T("root/etc/extensions/foo.raw"));
        char *bad[] = { (char *) "/etc", NULL };
        BrokerOverlayResult a = {}, b = {};
        int r;

        CHECK(t && fd >= 0, "overlay: namespace and image");
        if (!t)
                return;
        r = broker_mount_overlay(cfg, &who, t, &fd, 1, NULL, NULL, true, store, &a);
        CHECK(r == 0 && a.n_hierarchies == 2 && streq(a.hierarchies[0].hierarchy, "/usr") && a.hierarchies[0].n_layer_fds == 1 &&
              a.hierarchies[1].n_layer_fds == 0, "overlay of one image: /usr has its layer, /opt none (r=%d)", r);
        if (r < 0)
                return;
        int layer = a.hierarchies[0].layer_fds[0];
        CHECK(fd_is_detached(layer) && mount_flags_ok(layer) && owner_of(layer, "lib/extension-release.d/extension-release.foo") == U1,
              "the /usr layer: its subtree, detached, ro/nodev/nosuid, idmapped");
        CHECK(strv_length(a.extensions) == 1 && streq(a.extensions[0], "foo") && a.n_new == 0, "extensions: foo; its superblock from the store");
        CHECK(a.hierarchies[0].overlay_fd >= 0 && fd_is_detached(a.hierarchies[0].overlay_fd) &&
              owner_of(a.hierarchies[0].overlay_fd, "lib/extension-release.d/extension-release.foo") == U1 &&
              owner_of(a.hierarchies[0].overlay_fd, "lib/os-release") == U1, "the finished overlay: extension over the host's /usr");
        r = broker_mount_overlay(cfg, &who, t, NULL, 0, NULL, NULL, false, store, &b);
        CHECK(r == 0 && strv_length(b.extensions) == 1 && streq(b.extensions[0], "foo") && b.n_new == 0 &&
              strv_length(b.skipped) == 1 && streq(b.skipped[0], "bar"),
              "discovered: foo merged from the store, bar (the user's) skipped: %s", b.skipped_reason ? strna(b.skipped_reason[0]) : "-");
        broker_overlay_result_done(&a);
        broker_overlay_result_done(&b);
        r = broker_mount_overlay(cfg, &who, t, &fd, 1, bad, NULL, false, store, &a);
        CHECK(r == -EINVAL, "refused: hierarchy /etc (r=%d)", r);
}

#if SYSEXT_IDMAP_TEST_HOOKS
/* gc while the pin's superblock is used only by a detached clone (o's layer, as an overlay's
 * private layer: in no mount table): the entry stays dormant, the next MountImage gets the same
 * superblock back (pinned again); once nothing uses it a gc drops it. *sp: the pin's stat. */
static void test_gc_dormant(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *t, int fd,
                            BrokerLayerStore *store, BrokerOverlayResult *o, const struct stat *sp) {
        _cleanup_strv_free_ char **removed = NULL;
        BrokerImageResult c = {};
        struct stat sc = {}, root = {};
        const char *key = NULL, *fstype = NULL;
        int pin = -EBADF, r;

        if (o->n_hierarchies < 1 || o->hierarchies[0].n_layer_fds < 1 || broker_store_get(store, 0, &key, NULL) < 0)
                return;
        _cleanup_free_ char *k = strdup(key);
        r = broker_store_gc(store, &removed);
        CHECK(r == 1 && broker_store_size(store) == 1 && broker_store_lookup(store, k, &pin) == 0 &&
              broker_store_lookup_dormant(store, k, &root, &fstype) == 1 && root.st_dev == sp->st_dev && fstype && streq(fstype, "ext4"),
              "gc: used only by a detached clone: the pin closed, the entry dormant (r=%d)", r);
        r = broker_mount_image(cfg, who, t, fd, NULL, store, &c);
        CHECK(r == 0 && c.n_partitions == 1 && c.partitions[0].new_pinned_fd >= 0 && fstat(c.partitions[0].mount_fd, &sc) == 0 &&
              sc.st_dev == sp->st_dev && sc.st_ino == sp->st_ino && broker_store_lookup(store, k, &pin) == 1,
              "gc: MountImage of a dormant entry gets its superblock back, pinned again (r=%d: %s)", r,
              r < 0 ? strna(sx_last_error()) : "");
        broker_image_result_done(&c);
        removed = strv_free(removed);
        r = broker_store_gc(store, &removed);
        CHECK(r == 1 && broker_store_lookup_dormant(store, k, NULL, NULL) == 1, "gc: dormant again (r=%d)", r);
        broker_overlay_result_done(o);
        removed = strv_free(removed);
        r = broker_store_gc(store, &removed);
        CHECK(r == 1 && broker_store_size(store) == 0 && strv_length(removed) == 1 && streq(removed[0], k),
              "gc: the last user gone: the dormant entry dropped (r=%d)", r);
}
#endif

/* Kernels before 6.15 clone no detached mount: the pins' superblocks are mounted again by their
 * block device and cloned in a helper (the test hook takes that path here). An ext4 image, as
 * erofs on this kernel may mount the file itself, without a block device. */
static void test_clone_by_remount(const BrokerConfig *cfg) {
#if SYSEXT_IDMAP_TEST_HOOKS
        _cleanup_(broker_store_freep) BrokerLayerStore *store = NULL;
        BrokerCaller who = { .uid = U1, .gid = G1, .pid = 1, .pidfd = -EBADF };
        _cleanup_(broker_target_freep) BrokerTarget *t = target_for(&who, "0 61001 1\n", "0 61101 1\n");
        _cleanup_close_ int fd = -EBADF;
        BrokerImageResult a = {}, b = {};
        BrokerOverlayResult o = {};
        struct stat sa = {}, sp = {};
        int r, pin = -EBADF;

        if (!have("mkfs.ext4")) {
                SKIP("remount: mkfs.ext4 missing");
                return;
        }
        r = run("mkdir -p srcx/usr/lib/extension-release.d srcx/usr/share && echo ID=_any > srcx/usr/lib/extension-release.d/extension-release.fooext && "
                "echo x > srcx/usr/share/other && chown 5:5 srcx/usr/share/other && mkdir -p root/run/extensions && "
                "truncate -s 8M root/run/extensions/fooext.raw && mkfs.ext4 -q -F -d srcx root/run/extensions/fooext.raw");
        fd = open_ro(T("root/run/extensions/fooext.raw"));
        CHECK(r == 0 && fd >= 0 && t && broker_store_new(&store) == 0, "remount: an ext4 image, a namespace, a store");
        if (r != 0 || fd < 0 || !t || !store)
                return;
        test_hooks.force_clone_by_remount = true;
        r = broker_mount_image(cfg, &who, t, fd, NULL, store, &a);
        CHECK(r == 0 && a.n_partitions == 1 && a.partitions[0].new_pinned_fd >= 0, "remount: MountImage of a new superblock (r=%d: %s)",
              r, r < 0 ? strna(sx_last_error()) : "");
        if (r == 0)
                r = broker_mount_image(cfg, &who, t, fd, NULL, store, &b);
        CHECK(r == 0 && b.n_partitions == 1 && b.partitions[0].new_pinned_fd < 0, "remount: again, from the store's pin (r=%d: %s)",
              r, r < 0 ? strna(sx_last_error()) : "");
        if (r == 0) {
                BrokerPartition *p = &b.partitions[0];
                CHECK(broker_store_lookup(store, p->store_key, &pin) > 0 && fstat(pin, &sp) == 0 && fstat(p->mount_fd, &sa) == 0 &&
                      major(sp.st_dev) != 0 && sa.st_dev == sp.st_dev && sa.st_ino == sp.st_ino,
                      "remount: the clone has the pin's superblock (same block device %u:%u and root inode)",
                      major(sp.st_dev), minor(sp.st_dev));
                CHECK(fd_is_detached(p->mount_fd) && mount_flags_ok(p->mount_fd), "remount: the clone is detached, read-only, nosuid, nodev");
                CHECK(owner_of(p->mount_fd, "usr/lib/extension-release.d/extension-release.fooext") == U1 &&
                      owner_of(p->mount_fd, "usr/share/other") == IDMAP_NOBODY_ID, "remount: the clone is idmapped");
        }
        r = broker_mount_overlay(cfg, &who, t, &fd, 1, NULL, NULL, false, store, &o);
        CHECK(r == 0 && o.n_hierarchies == 2 && o.hierarchies[0].n_layer_fds == 1 && fd_is_detached(o.hierarchies[0].layer_fds[0]) &&
              owner_of(o.hierarchies[0].layer_fds[0], "lib/extension-release.d/extension-release.fooext") == U1 &&
              owner_of(o.hierarchies[0].layer_fds[0], "share/other") == IDMAP_NOBODY_ID && broker_store_size(store) == 1,
              "remount: MountOverlay's /usr layer is the image's usr subtree, detached, idmapped, from the pin (r=%d: %s)", r,
              r < 0 ? strna(sx_last_error()) : "");
        broker_image_result_done(&a);
        broker_image_result_done(&b);
        test_gc_dormant(cfg, &who, t, fd, store, &o, &sp);
        test_hooks.force_clone_by_remount = false;
        broker_overlay_result_done(&o);
#else
        SKIP("remount: a build without test hooks");
#endif
}

/* A trusted erofs image on a disk file system, where the kernel (6.12+) could mount the file
 * itself: what the store pins is still on a block device (a loop device), so that a gc can keep it
 * findable (test_gc_dormant()). */
static void test_store_block_device(const BrokerConfig *cfg) {
        _cleanup_(broker_store_freep) BrokerLayerStore *store = NULL;
        BrokerCaller who = { .uid = 0, .gid = 0, .pid = 1, .pidfd = -EBADF };
        _cleanup_close_ int fd = -EBADF;
        BrokerImageResult a = {};
        struct stat st = {};
        int r;

        if (!have("mkfs.ext4")) {
                SKIP("block device: mkfs.ext4 missing");
                return;
        }
        r = run("truncate -s 16M disk.img && mkfs.ext4 -q -F disk.img && mkdir -p root/var/lib/extensions && "
                "mount -o loop disk.img root/var/lib/extensions && cp root/etc/extensions/foo.raw root/var/lib/extensions/foo.raw");
        fd = open_ro(T("root/var/lib/extensions/foo.raw"));
        CHECK(r == 0 && fd >= 0 && broker_store_new(&store) == 0, "block device: a trusted erofs image on ext4, a store");
        if (r != 0 || fd < 0 || !store)
                return;
        r = broker_mount_image(cfg, &who, NULL, fd, NULL, store, &a);
        CHECK(r == 0 && a.n_partitions == 1 && a.partitions[0].new_pinned_fd >= 0 && fstat(a.partitions[0].new_pinned_fd, &st) == 0 &&
              major(st.st_dev) != 0, "block device: the pinned erofs superblock is on a block device (%u:%u; r=%d: %s)",
              major(st.st_dev), minor(st.st_dev), r, r < 0 ? strna(sx_last_error()) : "");
        broker_image_result_done(&a);
        store = broker_store_free(store);
        fd = safe_close(fd);
        (void) umount2(T("root/var/lib/extensions"), MNT_DETACH);
}

static int setup_tree(void) {
        return run("mkdir -p root/usr/lib && printf 'ID=debian\\nVERSION_ID=12\\n' > root/usr/lib/os-release && "
                   "mkdir -p src/usr/lib/extension-release.d src/usr/share root/etc/extensions home dirs/mine/foreign dirs/theirs/foreign && "
                   "echo ID=_any > src/usr/lib/extension-release.d/extension-release.foo && "
                   "echo x > src/usr/share/other && chown 5:5 src/usr/share/other && "
                   "mkfs.erofs --quiet root/etc/extensions/foo.raw src && "
                   "cp root/etc/extensions/foo.raw home/foo.raw && chown %u home/foo.raw && "
                   "cp root/etc/extensions/foo.raw root/etc/extensions/bar.raw && chown %u root/etc/extensions/bar.raw && "
                   "touch dirs/mine/file dirs/mine/rootfile dirs/mine/foreign/f && chown %u:%u dirs/mine dirs/mine/file && "
                   "chown %u dirs/theirs && chown %u:%u dirs/mine/foreign dirs/theirs/foreign && chown %u:%u dirs/mine/foreign/f",
                   (unsigned) U1, (unsigned) U1, (unsigned) U1, (unsigned) G1, (unsigned) U2, (unsigned) FOREIGN_UID_BASE,
                   (unsigned) FOREIGN_UID_BASE, (unsigned) FOREIGN_UID_BASE + 5, (unsigned) FOREIGN_UID_BASE + 5);
}

int main(void) {
        _cleanup_(broker_store_freep) BrokerLayerStore *store = NULL;
        BrokerConfig cfg = {};

        test_setup_output();
        if (geteuid() != 0) {
                SKIP("the broker tests need root (mounts, namespaces of other uids)");
                return test_result();
        }
        if (!have("mkfs.erofs")) {
                SKIP("mkfs.erofs missing");
                return test_result();
        }
        if (!mount_tests_possible())
                return test_result();
        /* /run: root's and not world-writable, so images below it can be trusted. */
        if (tmpdir_create("/run/test-broker.XXXXXX") < 0 || chmod(tmpdir, 0755) < 0 || setup_tree() != 0) {
                SKIP("cannot set up the test tree in /run: %m");
                return test_result();
        }
        CHECK(broker_config_load(T("root"), &cfg) == 0 && !cfg.allow_unsigned_untrusted &&
              cfg.private_copy_max == BROKER_PRIVATE_COPY_MAX_DEFAULT, "config: defaults without a file");
        CHECK(broker_store_new(&store) == 0, "store");
        test_image(&cfg, store);
        test_image_refusals(&cfg);
        test_directory();
        test_overlay(&cfg, store);
        test_store(store);
        test_store_block_device(&cfg);
        test_clone_by_remount(&cfg);
        test_image_rewritten(&cfg);
        broker_config_done(&cfg);
        return test_result();
}
