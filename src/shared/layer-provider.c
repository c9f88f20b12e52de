/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "broker-client.h"
#include "layer-provider.h"
#include "mountapi.h"

static bool partition_eligible(const Extension *e, const ExtensionOptions *o, PartitionDesignator d) {
        if (!e->dissected->partitions[d].found || e->use[d] == PARTITION_POLICY_UNPROTECTED)
                return true;
        /* With a root hash the broker checks it its own way (kernel, else userspace), which is what
         * auto asks for; kernel or userspace given explicitly stay here. */
        return (e->use[d] == PARTITION_POLICY_VERITY || e->use[d] == PARTITION_POLICY_SIGNED) &&
               o->verity_mode == VERITY_MODE_AUTO;
}

static bool eligible(const LayerProvider *p, const Extension *e, const ExtensionOptions *o) {
        struct stat st;

        if (!p || !p->broker || p->gone || geteuid() != 0)
                return false;
        /* The broker trusts a root caller's image as root's: a user's file never goes there. */
        if (o->user_controlled || o->open_as_user)
                return false;
        if (e->dissected->kind == DISSECT_DIRECTORY || fstat(e->dissected->fd, &st) < 0 || !S_ISREG(st.st_mode))
                return false;
        return partition_eligible(e, o, PARTITION_ROOT) && partition_eligible(e, o, PARTITION_USR);
}

static const char *use_name(const Extension *e, PartitionDesignator d) {
        if (!e->dissected->partitions[d].found)
                return "unused+absent";
        switch (e->use[d]) {
        case PARTITION_POLICY_SIGNED:
                return "signed";
        case PARTITION_POLICY_VERITY:
                return "verity";
        default:
                return "unprotected";
        }
}

/* What we decided, as the caller policy: the broker may do exactly that, or refuse. */
static int decided_policy(const Extension *e, char **ret) {
        return asprintf_safe(ret, "root=%s:usr=%s:=unused+absent", use_name(e, PARTITION_ROOT), use_name(e, PARTITION_USR));
}

/* The broker's partitions must be the ones dissect selected here. */
static int match_partitions(const Extension *e, const BrokerClientImage *img, int idx[2]) {
        idx[0] = idx[1] = -1;
        for (size_t k = 0; k < img->n_partitions; k++) {
                const BrokerClientPartition *bp = &img->partitions[k];
                PartitionDesignator d = partition_designator_from_string(bp->designator);
                const DissectedPartition *p;

                if ((d != PARTITION_ROOT && d != PARTITION_USR) || !e->dissected->partitions[d].found || idx[d] >= 0)
                        return sx_error(-EBADMSG, "the broker returned a %s partition that is not in use here", bp->designator);
                p = &e->dissected->partitions[d];
                if (!streq(bp->fstype, strempty(p->fstype)) || bp->offset != p->offset || bp->size != p->size)
                        return sx_error(-EBADMSG, "the broker's %s partition (%s, %" PRIu64 " bytes at %" PRIu64 ") "
                                        "is not the one found here (%s, %" PRIu64 " bytes at %" PRIu64 ")", bp->designator,
                                        bp->fstype, bp->size, bp->offset, strna(p->fstype), p->size, p->offset);
                idx[d] = (int) k;
        }
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++)
                if (e->dissected->partitions[d].found && idx[d] < 0)
                        return sx_error(-EBADMSG, "the broker returned no %s partition", partition_designator_to_string(d));
        return 0;
}

/* A clone made here, as our own mounts are (so the engine may idmap it and overlayfs take it),
 * without the nosuid the broker sets on what it hands out: the overlay decides that, as for a
 * layer mounted here. */
static int clone_here(int fd, int *ret) {
        struct mount_attr a = { .attr_clr = MOUNT_ATTR_NOSUID };
        _cleanup_close_ int c = sys_open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);

        if (c < 0)
                return sx_error(negative_errno(), "cannot clone the broker's mount: %m");
        if (sys_mount_setattr(c, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
                return sx_error(negative_errno(), "cannot clear nosuid on the clone of the broker's mount: %m");
        *ret = TAKE_FD(c);
        return 0;
}

static int take_mounts(Extension *e, const BrokerClientImage *img, ImageMounts *ret) {
        _cleanup_(image_mounts_done) ImageMounts m = IMAGE_MOUNTS_NULL;
        int idx[2], r;

        r = match_partitions(e, img, idx);
        for (PartitionDesignator d = PARTITION_ROOT; r >= 0 && d <= PARTITION_USR; d++)
                if (idx[d] >= 0)
                        r = clone_here(img->partitions[idx[d]].mount_fd, d == PARTITION_ROOT ? &m.root_fd : &m.usr_fd);
        if (r < 0)
                return r;
        /* The root hashes and signers are the ones checked here; the broker set the partitions up. */
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                const VerityData *v = e->verity ? verity_settings_get(e->verity, d) : NULL;
                if (idx[d] < 0 || e->use[d] == PARTITION_POLICY_UNPROTECTED || !v || !v->root_hash)
                        continue;
                r = verity_result_fill(v, &e->verity_ctx.result[d]);
                if (r < 0)
                        return r;
                e->verity_ctx.result[d].checked_by = VERITY_CHECKED_BROKER;
        }
        *ret = m;
        m = IMAGE_MOUNTS_NULL;
        return 0;
}

int layer_provider_mount(Extension *e, const ExtensionOptions *o, void *userdata, ImageMounts *ret) {
        LayerProvider *p = userdata;
        _cleanup_(broker_client_image_done) BrokerClientImage img = {};
        _cleanup_free_ char *policy = NULL;
        int r;

        assert(e && o && ret);
        if (!eligible(p, e, o))
                return 0;
        r = decided_policy(e, &policy);
        if (r < 0)
                return r;
        r = broker_client_mount_image(p->broker, e->dissected->fd, policy, &img);
        if (r == -ENOTCONN) {
                p->gone = true;
                sx_clear_error();
                return 0;
        }
        if (r == -EACCES || r == -ETIMEDOUT)
                p->gone = true;   /* not root's socket, or wedged: never again in this merge */
        if (r >= 0)
                r = take_mounts(e, &img, ret);
        return r < 0 ? r : 1;
}
