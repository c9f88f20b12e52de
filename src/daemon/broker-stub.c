/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Stand-in for src/shared/broker.c while the broker library is not in the tree (meson builds this
 * file only then): the store works, every mount call fails with -EOPNOTSUPP. The protocol, limits
 * and process model of the daemon can be tested with it; nothing is ever mounted. */

#include "broker.h"

struct BrokerTarget {
        int userns_fd;
};

typedef struct StoreEntry {
        char *key;
        int fd;
} StoreEntry;

struct BrokerLayerStore {
        StoreEntry *entries;
        size_t n;
};

int broker_config_load(const char *root, BrokerConfig *ret) {
        char *r = strdup(root ?: "/");

        if (!r)
                return -ENOMEM;
        *ret = (BrokerConfig) { .private_copy_max = BROKER_PRIVATE_COPY_MAX_DEFAULT, .root = r };
        return 0;
}

void broker_config_done(BrokerConfig *c) {
        free(c->root);
        c->root = NULL;
}

int broker_target_open(const BrokerCaller *who, int userns_fd, BrokerTarget **ret) {
        BrokerTarget *t;

        if (userns_fd < 0 && who->uid != 0)
                return sx_error(-EACCES, "a user namespace is required for callers other than root");
        t = calloc(1, sizeof(*t));
        if (!t) {
                safe_close(userns_fd);
                return -ENOMEM;
        }
        t->userns_fd = userns_fd;
        *ret = t;
        return 0;
}

BrokerTarget *broker_target_free(BrokerTarget *t) {
        if (t) {
                safe_close(t->userns_fd);
                free(t);
        }
        return NULL;
}

int broker_target_userns_fd(const BrokerTarget *t) {
        return t ? t->userns_fd : -EBADF;
}

int broker_store_new(BrokerLayerStore **ret) {
        *ret = calloc(1, sizeof(BrokerLayerStore));
        return *ret ? 0 : -ENOMEM;
}

BrokerLayerStore *broker_store_free(BrokerLayerStore *s) {
        for (size_t i = 0; s && i < s->n; i++) {
                free(s->entries[i].key);
                safe_close(s->entries[i].fd);
        }
        if (s)
                free(s->entries);
        free(s);
        return NULL;
}

int broker_store_lookup(BrokerLayerStore *s, const char *key, int *ret_pinned_fd) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->entries[i].key, key)) {
                        *ret_pinned_fd = s->entries[i].fd;
                        return 1;
                }
        *ret_pinned_fd = -EBADF;
        return 0;
}

int broker_store_insert(BrokerLayerStore *s, const char *key, int pinned_fd) {
        StoreEntry *n;
        char *k;

        if (isempty(key) || pinned_fd < 0) {
                safe_close(pinned_fd);
                return -EINVAL;
        }
        (void) broker_store_remove(s, key);
        k = strdup(key);
        n = reallocarray(s->entries, s->n + 1, sizeof(StoreEntry));
        if (!k || !n) {
                free(k);
                if (n)
                        s->entries = n;
                safe_close(pinned_fd);
                return -ENOMEM;
        }
        s->entries = n;
        s->entries[s->n++] = (StoreEntry) { .key = k, .fd = pinned_fd };
        return 0;
}

size_t broker_store_size(const BrokerLayerStore *s) {
        return s->n;
}

int broker_store_get(const BrokerLayerStore *s, size_t i, const char **ret_key, int *ret_fd) {
        if (i >= s->n)
                return -ENXIO;
        *ret_key = s->entries[i].key;
        *ret_fd = s->entries[i].fd;
        return 0;
}

int broker_store_remove(BrokerLayerStore *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->entries[i].key, key)) {
                        free(s->entries[i].key);
                        safe_close(s->entries[i].fd);
                        memmove(s->entries + i, s->entries + i + 1, (s->n - i - 1) * sizeof(StoreEntry));
                        s->n--;
                        return 1;
                }
        return 0;
}

int broker_store_gc(BrokerLayerStore *s, char ***ret_removed_keys) {
        if (ret_removed_keys)
                *ret_removed_keys = NULL;
        return 0;
}

void broker_image_result_done(BrokerImageResult *r) {
}

void broker_overlay_result_done(BrokerOverlayResult *r) {
}

int broker_mount_image(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                       int image_fd, const char *caller_policy, BrokerLayerStore *store,
                       BrokerImageResult *ret) {
        return sx_error(-EOPNOTSUPP, "this sysext-idmapd was built without the broker library");
}

int broker_mount_directory(const BrokerCaller *who, BrokerTarget *target, int dir_fd,
                           const char *mode, int *ret_mount_fd) {
        return sx_error(-EOPNOTSUPP, "this sysext-idmapd was built without the broker library");
}

int broker_mount_overlay(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                         const int *image_fds, size_t n_image_fds, char * const *hierarchies,
                         const char *caller_policy, bool want_overlay, BrokerLayerStore *store,
                         BrokerOverlayResult *ret) {
        return sx_error(-EOPNOTSUPP, "this sysext-idmapd was built without the broker library");
}
