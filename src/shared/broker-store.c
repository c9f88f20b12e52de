/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <sys/sysmacros.h>

#include "broker-internal.h"
#include "mountapi.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* An entry holds a pin (a plain detached mount of the superblock), or, once gc found the
 * superblock in no mount table but still alive (an overlay's private lower layer), it is dormant:
 * the pin is gone and an fd of the superblock's block device is held instead, so that the device
 * keeps its contents (a loop device is not cleared, a dm device not removed, while it is open) and
 * a new mount of it gives back the live superblock (broker_remount_superblock()). */
typedef struct StoreEntry {
        char *key;
        int fd;                 /* the pin, or -EBADF if dormant */
        int bdev_fd;            /* dormant only: the block device */
        struct stat root;       /* dormant only: the pin's root (device and inode) */
        const char *fstype;     /* dormant only */
} StoreEntry;

struct BrokerLayerStore {
        StoreEntry *e;
        size_t n;
};

int broker_store_new(BrokerLayerStore **ret) {
        BrokerLayerStore *s = calloc(1, sizeof(BrokerLayerStore));

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static void entry_done(StoreEntry *e) {
        free(e->key);
        safe_close(e->fd);
        safe_close(e->bdev_fd);
}

BrokerLayerStore *broker_store_free(BrokerLayerStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++)
                entry_done(&s->e[i]);
        free(s->e);
        free(s);
        return NULL;
}

static ssize_t store_find(const BrokerLayerStore *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->e[i].key, key))
                        return (ssize_t) i;
        return -1;
}

int broker_store_lookup(BrokerLayerStore *s, const char *key, int *ret_pinned_fd) {
        ssize_t i;

        assert(s && key && ret_pinned_fd);
        i = store_find(s, key);
        *ret_pinned_fd = i >= 0 ? s->e[i].fd : -EBADF;
        return *ret_pinned_fd >= 0;
}

int broker_store_lookup_dormant(BrokerLayerStore *s, const char *key, struct stat *ret_root, const char **ret_fstype) {
        ssize_t i;

        assert(s && key);
        i = store_find(s, key);
        if (i < 0 || s->e[i].fd >= 0)
                return 0;
        if (ret_root)
                *ret_root = s->e[i].root;
        if (ret_fstype)
                *ret_fstype = s->e[i].fstype;
        return 1;
}

int broker_store_insert(BrokerLayerStore *s, const char *key, int pinned_fd) {
        _cleanup_close_ int fd = pinned_fd;
        _cleanup_free_ char *k = NULL;
        ssize_t i;

        assert(s);
        if (isempty(key) || fd < 0)
                return -EINVAL;
        i = store_find(s, key);
        if (i >= 0) {
                safe_close(s->e[i].fd);
                s->e[i].fd = TAKE_FD(fd);
                s->e[i].bdev_fd = safe_close(s->e[i].bdev_fd);
                return 0;
        }
        k = strdup(key);
        if (!k)
                return -ENOMEM;
        StoreEntry *ne = reallocarray(s->e, s->n + 1, sizeof(StoreEntry));
        if (!ne)
                return -ENOMEM;
        s->e = ne;
        s->e[s->n++] = (StoreEntry) { .key = TAKE_PTR(k), .fd = TAKE_FD(fd), .bdev_fd = -EBADF };
        return 0;
}

size_t broker_store_size(const BrokerLayerStore *s) {
        return s ? s->n : 0;
}

int broker_store_get(const BrokerLayerStore *s, size_t i, const char **ret_key, int *ret_fd) {
        if (!s || i >= s->n)
                return -ENXIO;
        if (ret_key)
                *ret_key = s->e[i].key;
        if (ret_fd)
                *ret_fd = s->e[i].fd;
        return 0;
}

static void store_drop(BrokerLayerStore *s, size_t i) {
        entry_done(&s->e[i]);
        memmove(s->e + i, s->e + i + 1, (s->n - i - 1) * sizeof(StoreEntry));
        s->n--;
}

int broker_store_remove(BrokerLayerStore *s, const char *key) {
        ssize_t i;

        assert(s && key);
        i = store_find(s, key);
        if (i < 0)
                return 0;
        store_drop(s, (size_t) i);
        return 1;
}

/* ---- garbage collection ---- */

typedef struct DevSet {
        dev_t *v;
        size_t n;
} DevSet;

static int devset_add(DevSet *d, dev_t dev) {
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i] == dev)
                        return 0;
        dev_t *nv = reallocarray(d->v, d->n + 1, sizeof(dev_t));
        if (!nv)
                return -ENOMEM;
        d->v = nv;
        d->v[d->n++] = dev;
        return 0;
}

static bool devset_has(const DevSet *d, dev_t dev) {
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i] == dev)
                        return true;
        return false;
}

/* The devices of every mount in one mountinfo: its third field, MAJOR:MINOR. */
static int mountinfo_devs(int dir_fd, DevSet *devs) {
        _cleanup_free_ char *text = NULL;
        char *save = NULL;
        int r;

        r = read_full_file_at(dir_fd, "mountinfo", 64U * 1024U * 1024U, &text, NULL);
        if (r < 0)
                return 0;       /* gone meanwhile, or not ours to read: nothing learned */
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned maj, min;
                if (sscanf(line, "%*s %*s %u:%u", &maj, &min) == 2 && (r = devset_add(devs, makedev(maj, min))) < 0)
                        return r;
        }
        return 0;
}

/* Every device mounted in any mount namespace, each namespace read once (by its inode). */
static int collect_mounted_devs(const char *proc, DevSet *devs) {
        _cleanup_(closedirp) DIR *d = opendir(proc ?: "/proc");
        _cleanup_free_ ino_t *seen = NULL;
        size_t n_seen = 0;
        struct dirent *de;
        int r;

        if (!d)
                return sx_error(negative_errno(), "%s: cannot list processes: %m", proc ?: "/proc");
        while ((de = readdir(d))) {
                _cleanup_close_ int pid_fd = -EBADF;
                struct stat st;
                bool dup = false;
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                pid_fd = openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (pid_fd < 0 || fstatat(pid_fd, "ns/mnt", &st, 0) < 0)
                        continue;
                for (size_t i = 0; i < n_seen && !dup; i++)
                        dup = seen[i] == st.st_ino;
                if (dup)
                        continue;
                ino_t *ns = reallocarray(seen, n_seen + 1, sizeof(ino_t));
                if (!ns)
                        return -ENOMEM;
                seen = ns;
                seen[n_seen++] = st.st_ino;
                if ((r = mountinfo_devs(pid_fd, devs)) < 0)
                        return r;
        }
        return 0;
}

/* The block device dev, opened through a node of our own (broker_bdev_node()). */
static int open_bdev(dev_t dev, int *ret_fd) {
        _cleanup_close_ int tmp = -EBADF;
        int r, fd;

        r = broker_bdev_node(dev, &tmp);
        if (r < 0)
                return r;
        fd = openat(tmp, "dev", O_RDONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

/* 1: a file system still holds the block device bdev_fd is open on (it claims it exclusively as
 * long as its superblock lives, however few mounts of it any table shows); 0: nothing does. */
static int bdev_in_use(int bdev_fd) {
        char path[STRLEN("/proc/self/fd/") + 12];
        int fd;

        (void) snprintf(path, sizeof(path), "/proc/self/fd/%i", bdev_fd);
        fd = open(path, O_RDONLY | O_EXCL | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0) {
                safe_close(fd);
                return 0;
        }
        return errno == EBUSY ? 1 : negative_errno();
}

/* The pin of entry e, whose superblock no mount table shows, is closed. For a superblock on a
 * block device: first that device is opened; then, if the superblock outlives the pin (an
 * overlay's private layer still holds it), the entry stays, dormant. 1 dormant, 0 to drop. */
static int entry_try_dormant(StoreEntry *e) {
        _cleanup_close_ int bdev = -EBADF;
        const char *fstype = broker_bdev_fs_name(e->fd);
        struct stat root;
        int r;

        if (!fstype || fstat(e->fd, &root) < 0 || major(root.st_dev) == 0)
                return 0;               /* no block device (file-backed erofs): cannot be found again */
        if (open_bdev(root.st_dev, &bdev) < 0) {
                sx_clear_error();
                return 0;
        }
        e->fd = safe_close(e->fd);
        r = bdev_in_use(bdev);
        if (r <= 0)
                return 0;
        e->bdev_fd = TAKE_FD(bdev);
        e->root = root;
        e->fstype = fstype;
        return 1;
}

int broker_store_gc_in(BrokerLayerStore *s, const char *proc, char ***ret_removed_keys) {
        _cleanup_strv_free_ char **removed = NULL;
        DevSet devs = {};
        int r, n = 0;

        assert(s);
        r = collect_mounted_devs(proc, &devs);
        for (size_t i = 0; r >= 0 && i < s->n;) {
                StoreEntry *e = &s->e[i];
                struct stat st;

                if (e->fd < 0) {        /* dormant: kept while a file system holds its device */
                        if (bdev_in_use(e->bdev_fd) != 0) {
                                i++;
                                continue;
                        }
                        if (ret_removed_keys && (r = strv_extend(&removed, e->key)) < 0)
                                break;
                        n++;
                        store_drop(s, i);
                        continue;
                }
                if (fstat(e->fd, &st) < 0 || devset_has(&devs, st.st_dev)) {
                        i++;
                        continue;
                }
                if (ret_removed_keys && (r = strv_extend(&removed, e->key)) < 0)
                        break;
                n++;
                if (entry_try_dormant(e) > 0)
                        i++;
                else
                        store_drop(s, i);
        }
        free(devs.v);
        if (r < 0)
                return r;
        if (ret_removed_keys)
                *ret_removed_keys = TAKE_PTR(removed);
        return n;
}

int broker_store_gc(BrokerLayerStore *s, char ***ret_removed_keys) {
        return broker_store_gc_in(s, NULL, ret_removed_keys);
}
