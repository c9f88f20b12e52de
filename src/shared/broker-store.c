/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <sys/sysmacros.h>

#include "broker-internal.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

struct BrokerLayerStore {
        char **keys;
        int *fds;
        size_t n;
};

int broker_store_new(BrokerLayerStore **ret) {
        BrokerLayerStore *s = calloc(1, sizeof(BrokerLayerStore));

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

BrokerLayerStore *broker_store_free(BrokerLayerStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                free(s->keys[i]);
                safe_close(s->fds[i]);
        }
        free(s->keys);
        free(s->fds);
        free(s);
        return NULL;
}

static ssize_t store_find(const BrokerLayerStore *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->keys[i], key))
                        return (ssize_t) i;
        return -1;
}

int broker_store_lookup(BrokerLayerStore *s, const char *key, int *ret_pinned_fd) {
        ssize_t i;

        assert(s && key && ret_pinned_fd);
        i = store_find(s, key);
        *ret_pinned_fd = i >= 0 ? s->fds[i] : -EBADF;
        return i >= 0;
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
                safe_close(s->fds[i]);
                s->fds[i] = TAKE_FD(fd);
                return 0;
        }
        k = strdup(key);
        char **nk = reallocarray(s->keys, s->n + 1, sizeof(char *));
        if (nk)
                s->keys = nk;
        int *nf = reallocarray(s->fds, s->n + 1, sizeof(int));
        if (nf)
                s->fds = nf;
        if (!k || !nk || !nf)
                return -ENOMEM;
        s->keys[s->n] = TAKE_PTR(k);
        s->fds[s->n++] = TAKE_FD(fd);
        return 0;
}

size_t broker_store_size(const BrokerLayerStore *s) {
        return s ? s->n : 0;
}

int broker_store_get(const BrokerLayerStore *s, size_t i, const char **ret_key, int *ret_fd) {
        if (!s || i >= s->n)
                return -ENXIO;
        if (ret_key)
                *ret_key = s->keys[i];
        if (ret_fd)
                *ret_fd = s->fds[i];
        return 0;
}

static void store_drop(BrokerLayerStore *s, size_t i) {
        free(s->keys[i]);
        safe_close(s->fds[i]);
        memmove(s->keys + i, s->keys + i + 1, (s->n - i - 1) * sizeof(char *));
        memmove(s->fds + i, s->fds + i + 1, (s->n - i - 1) * sizeof(int));
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

int broker_store_gc_in(BrokerLayerStore *s, const char *proc, char ***ret_removed_keys) {
        _cleanup_strv_free_ char **removed = NULL;
        DevSet devs = {};
        int r, n = 0;

        assert(s);
        r = collect_mounted_devs(proc, &devs);
        for (size_t i = 0; r >= 0 && i < s->n;) {
                struct stat st;
                if (fstat(s->fds[i], &st) < 0 || devset_has(&devs, st.st_dev)) {
                        i++;
                        continue;
                }
                if (ret_removed_keys && (r = strv_extend(&removed, s->keys[i])) < 0)
                        break;
                store_drop(s, i);
                n++;
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
