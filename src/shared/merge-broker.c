/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>

#include "broker-client.h"
#include "merge-broker.h"

#define UID_MAP_TEXT_MAX 4096
#define NOTICE_MAX 1024

int merge_broker_in_container(void) {
        _cleanup_free_ char *text = NULL;
        uint32_t in, out, count;
        int consumed = 0;

        if (geteuid() != 0)
                return 0;
        if (read_full_file_at(AT_FDCWD, "/proc/self/uid_map", UID_MAP_TEXT_MAX, &text, NULL) < 0)
                return 0;
        /* The initial namespace maps every id onto itself in one line. */
        if (sscanf(text, " %" SCNu32 " %" SCNu32 " %" SCNu32 " %n", &in, &out, &count, &consumed) == 3 &&
            in == 0 && out == 0 && count == UINT32_MAX && text[consumed] == 0)
                return 0;
        return 1;
}

_printf_(2, 3) static void notice(const MergeContext *c, const char *fmt, ...) {
        char m[NOTICE_MAX];
        va_list ap;

        if (!c->notice)
                return;
        va_start(ap, fmt);
        vsnprintf(m, sizeof(m), fmt, ap);
        va_end(ap);
        c->notice(m, c->notice_userdata);
}

static int check_context(const MergeContext *c) {
        if (c->root && !streq(c->root, "/"))
                return sx_error(-EINVAL, "merge in a container: --root= does not apply (the container's own /usr and /opt are merged)");
        if (c->namespace_of > 0)
                return sx_error(-EINVAL, "merge in a container: --namespace-of= does not apply");
        if (c->mutable_mode != MUTABLE_NO)
                return sx_error(-EINVAL, "merge in a container: --mutable= does not apply; the broker's layers are read-only");
        if (!idmap_is_identity(c->idmap))
                return sx_error(-EINVAL, "merge in a container: --idmap= does not apply; layers follow the container's user namespace");
        if (c->image_class != IMAGE_CLASS_SYSEXT)
                return sx_error(-EOPNOTSUPP, "merge in a container: only system extensions (not --class=confext)");
        return 0;
}

static int open_images(const MergeContext *c, int *fds, size_t *n) {
        for (size_t i = 0; i < c->n_images; i++) {
                int fd = open(c->images[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0)
                        return sx_error(negative_errno(), "%s: cannot open: %m", c->images[i].path);
                fds[(*n)++] = fd;
        }
        return 0;
}

static void report(const MergeContext *c, const BrokerClientLayers *l, char **missing) {
        _cleanup_free_ char *list = strv_join(l->extensions, "', '");

        for (size_t i = 0; l->skipped && l->skipped[i]; i++)
                notice(c, "Skipping extension '%s': %s", l->skipped[i], l->skipped_reason[i]);
        STRV_FOREACH(m, missing)
                notice(c, "'%s' does not exist in this container; its layers are left out.", *m);
        if (list && *list)
                notice(c, "Using extensions '%s' from the broker.", list);
        else
                notice(c, "No extensions from the broker.");
}

int merge_broker_extensions(const MergeContext *c, const char *socket, const char *policy) {
        _cleanup_(broker_client_layers_done) BrokerClientLayers l = {};
        _cleanup_strv_free_ char **missing = NULL;
        _cleanup_close_ int userns = -EBADF;
        _cleanup_free_ int *fds = NULL;
        size_t n = 0;
        int r;

        assert(c);
        r = check_context(c);
        if (r < 0)
                return r;
        fds = calloc(c->n_images + 1, sizeof(int));
        if (!fds)
                return -ENOMEM;
        userns = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
        if (userns < 0)
                return sx_error(negative_errno(), "/proc/self/ns/user: %m");
        r = open_images(c, fds, &n);
        if (r >= 0)
                r = broker_client_mount_overlay(socket ?: BROKER_SOCKET_DEFAULT, fds, n, userns, c->hierarchies,
                                                policy, false, &l);
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
        if (r < 0)
                return r;
        r = broker_client_layers_attach(&l, &missing);
        if (r < 0)
                return r;
        report(c, &l, missing);
        for (size_t i = 0; i < l.n_hierarchies; i++)
                if (l.hierarchies[i].n_layer_fds > 0 && !strv_contains(missing, l.hierarchies[i].path))
                        notice(c, "Merged extensions into '%s'.", l.hierarchies[i].path);
        return 0;
}
