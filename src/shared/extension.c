/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>

#include "extension.h"
#include "overlay.h"

int host_info_load(const char *root, HostInfo *ret) {
        _cleanup_(release_file_freep) ReleaseFile *rel = NULL;
        _cleanup_free_ char *r_copy = NULL;
        int r;

        r = host_release_load(root, &rel);
        if (r < 0)
                return r;
        if (root) {
                r_copy = strdup(root);
                if (!r_copy)
                        return -ENOMEM;
        }
        *ret = (HostInfo) {
                .root = TAKE_PTR(r_copy),
                .release = TAKE_PTR(rel),
                .scope = host_scope(root),
        };
        return 0;
}

void host_info_done(HostInfo *h) {
        free(h->root);
        h->root = NULL;
        h->release = release_file_free(h->release);
}

Extension *extension_free(Extension *e) {
        if (!e)
                return NULL;
        image_mounts_done(&e->mounts);
        verity_context_done(&e->verity_ctx);
        verity_settings_free(e->verity);
        dissected_image_free(e->dissected);
        image_free(e->image);
        release_file_free(e->release);
        free(e->release_path);
        free(e->reason);
        free(e->policy_refusal);
        free(e->provider_notice);
        free(e);
        return NULL;
}

void extension_array_free(Extension **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                extension_free(v[i]);
        free(v);
}

void extension_array_dissolve_mounts(Extension **v, size_t n) {
        _cleanup_free_ int *fds = n > 0 ? calloc(n, 2 * sizeof(int)) : NULL;

        if (!fds)
                return;         /* none (or no memory): closed with the extension, as ever */
        for (size_t i = 0; i < n; i++) {
                fds[2 * i] = v[i] ? TAKE_FD(v[i]->mounts.root_fd) : -EBADF;
                fds[2 * i + 1] = v[i] ? TAKE_FD(v[i]->mounts.usr_fd) : -EBADF;
        }
        mounts_dissolve(fds, 2 * n);
}

static bool parse_boolean_loose(const char *v) {
        return v && (streq(v, "1") || streq(v, "yes") || streq(v, "y") || streq(v, "true") || streq(v, "on"));
}

/* Who names the image in a message: callees given the image or its path (dissect_image(),
 * dissected_image_mount(), verity_settings_*(), verity_context_relinquish()) name it, or the
 * sidecar or certificate they read, themselves; callees given only an fd or a name
 * (image_has_os_release(), extension_release_*(), image_policy_*(), image_mounts_open_hierarchy())
 * do not, and get the image's path put in front here. */
static int fail_naming(int r, const Image *i) {
        return sx_error_prefix(r, "%s", i->path);
}

/* For callees that name the image: only if one said nothing about r (out of memory, say). */
static int named_by_callee(int r, const Image *i) {
        return sx_error_fallback(r, "%s: %m", i->path);
}

static int extension_read_release(Extension *e, const ExtensionOptions *o) {
        /* A sysext's extension-release is in /usr: the usr partition's if there is one. A confext's
         * is in /etc, which only a root partition (or a bare file system) has. */
        bool usr_only = e->mounts.usr_fd >= 0 && (o->image_class != IMAGE_CLASS_CONFEXT || e->mounts.root_fd < 0);
        int fd = usr_only ? e->mounts.usr_fd : e->mounts.root_fd;
        int r;

        r = image_has_os_release(fd, usr_only);
        if (r < 0)
                return fail_naming(r, e->image);
        if (r > 0)
                return sx_error(-EMEDIUMTYPE, "%s: image ships usr/lib/os-release; it is an OS image, not an extension",
                                e->image->path);
        r = extension_release_load(fd, usr_only, o->image_class, e->image->name, &e->release, &e->release_path);
        if (r < 0)
                return fail_naming(r, e->image);
        r = extension_release_check(o->image_class, e->image->name, e->release, o->host->release, o->host->scope, &e->reason);
        if (r < 0)
                return fail_naming(r, e->image);
        e->compatible = r > 0 || o->force;
        e->reload_manager = parse_boolean_loose(release_file_get(e->release, "EXTENSION_RELOAD_MANAGER"));
        return 0;
}

PartitionPolicyFlags protection_to_policy_flag(VerityProtection p) {
        switch (p) {
        case VERITY_PROTECTION_SIGNED:
                return PARTITION_POLICY_SIGNED;
        case VERITY_PROTECTION_VERITY:
                return PARTITION_POLICY_VERITY;
        case VERITY_PROTECTION_UNPROTECTED:
                return PARTITION_POLICY_UNPROTECTED;
        default:
                return PARTITION_POLICY_ABSENT;
        }
}

static VerityProtection policy_flag_to_protection(PartitionPolicyFlags f) {
        if (f == PARTITION_POLICY_SIGNED)
                return VERITY_PROTECTION_SIGNED;
        if (f == PARTITION_POLICY_VERITY)
                return VERITY_PROTECTION_VERITY;
        if (f == PARTITION_POLICY_UNPROTECTED)
                return VERITY_PROTECTION_UNPROTECTED;
        return VERITY_PROTECTION_ABSENT;
}

const char *extension_trust_summary(const Extension *e) {
        VerityProtection best = VERITY_PROTECTION_ABSENT;

        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                VerityProtection p = policy_flag_to_protection(e->use[d]);
                if (p > best)
                        best = p;
        }
        return verity_protection_to_string(best);
}

const VerityResult *extension_verity_result(const Extension *e) {
        PartitionDesignator d = e->dissected && e->dissected->partitions[PARTITION_USR].found ? PARTITION_USR : PARTITION_ROOT;

        return &e->verity_ctx.result[d];
}

/* What the policy lets us use of a partition that offers more is set up with less: drop the root
 * hash so the partition is mounted plainly, or forget the partition altogether. */
static void extension_apply_use(Extension *e, PartitionDesignator d) {
        VerityData *v = e->verity ? &e->verity->data[d] : NULL;

        if (e->use[d] == PARTITION_POLICY_UNUSED)
                e->dissected->partitions[d].found = false;
        else if (e->use[d] == PARTITION_POLICY_UNPROTECTED && v && v->root_hash) {
                free(v->root_hash);
                v->root_hash = NULL;
                v->root_hash_size = 0;
        }
}

/* The policy for an image a user controls: whatever the caller's policy allows, and signed only. */
static int user_controlled_policy(const ImagePolicy *policy, ImagePolicy **ret) {
        _cleanup_image_policy_ ImagePolicy *strict = NULL;
        int r;

        r = image_policy_from_string(image_policy_sysext_strict, &strict);
        if (r < 0)
                return r;
        return image_policy_intersect(policy, strict, ret);
}

/* Root hashes and signatures, then the image policy over what the image offers. */
static int extension_check_trust(Extension *e, const ExtensionOptions *o) {
        _cleanup_image_policy_ ImagePolicy *strict = NULL;
        const DissectedImage *m = e->dissected;
        const ImagePolicy *policy = o->policy;
        int r;

        if (o->user_controlled) {
                r = user_controlled_policy(o->policy, &strict);
                if (r < 0)
                        return r;
                policy = strict;
        }
        r = verity_settings_load(m, e->image->path, e->image->no_symlinks, &e->verity);
        if (r < 0)
                return named_by_callee(r, e->image);
        r = verity_settings_verify_signatures(e->verity, o->verity_root);
        if (r < 0)
                return named_by_callee(r, e->image);
        for (PartitionDesignator d = PARTITION_ROOT; d <= PARTITION_USR; d++) {
                const DissectedPartition *p = &m->partitions[d];
                const char *dn = partition_designator_to_string(d);
                _cleanup_free_ char *reason = NULL;
                VerityProtection prot = verity_protection(m, e->verity, d);
                PartitionPolicyFlags pf;

                if (o->verity_mode == VERITY_MODE_OFF && prot > VERITY_PROTECTION_UNPROTECTED)
                        prot = VERITY_PROTECTION_UNPROTECTED;   /* not checked, so not protected */
                e->protection[d] = prot;
                pf = protection_to_policy_flag(prot);
                if (prot != VERITY_PROTECTION_ABSENT && image_policy_may_use(policy, dn) == 0)
                        pf = PARTITION_POLICY_UNUSED;
                r = image_policy_check_full(policy, dn, pf, p->read_only, p->growfs, p->fstype, &e->use[d], &reason);
                if (r < 0)
                        return fail_naming(r, e->image);
                if (r == 0 && o->report_policy) {
                        e->policy_refusal = strjoin(dn, ": ", strna(reason));
                        return e->policy_refusal ? 0 : -ENOMEM;
                }
                if (r == 0 && o->user_controlled)
                        return sx_error(-EPERM, "%s: not trusted (%s), so it must be signed by a trusted certificate: %s",
                                        e->image->path, o->user_controlled_why ?: "a user controls it", strna(reason));
                if (r == 0)
                        return sx_error(-EPERM, "%s: refused by the image policy: %s", e->image->path, strna(reason));
                extension_apply_use(e, d);
        }
        if (!m->partitions[PARTITION_ROOT].found && !m->partitions[PARTITION_USR].found)
                return sx_error(-EPERM, "%s: the image policy leaves no partition to use", e->image->path);
        /* The policy says so already; this must hold whatever a policy given to us says. */
        for (PartitionDesignator d = PARTITION_ROOT; o->user_controlled && d <= PARTITION_USR; d++)
                if (m->partitions[d].found && e->use[d] != PARTITION_POLICY_SIGNED)
                        return sx_error(-EPERM, "%s: not trusted (%s), so it must be signed by a trusted certificate",
                                        e->image->path, o->user_controlled_why ?: "a user controls it");
        return 0;
}

static int extension_mount(Extension *e, const ExtensionOptions *o) {
        int r;

        e->verity_ctx = VERITY_CONTEXT_INIT(e->verity, o->verity_mode);
        r = o->provide ? o->provide(e, o, o->provide_userdata, &e->mounts) : 0;
        if (r > 0) {
                e->from_broker = true;
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* The broker is a way to share, not a condition: mount it here, and say why. */
                e->provider_notice = strjoin(e->image->path, ": not from the broker's layer store (",
                                             strna(sx_last_error()), "), mounted here");
                if (!e->provider_notice)
                        return -ENOMEM;
                verity_context_done(&e->verity_ctx);
                e->verity_ctx = VERITY_CONTEXT_INIT(e->verity, o->verity_mode);
                sx_clear_error();
        }
        /* A user may rewrite the file after a userspace check: then serve what was checked. */
        e->verity_ctx.private_copy = o->user_controlled;
        e->verity_ctx.private_copy_max = o->private_copy_max;
        r = dissected_image_mount(e->dissected, verity_open_partition, &e->verity_ctx, &e->mounts);
        if (r < 0)
                return named_by_callee(r, e->image);
        /* From now on dm devices live exactly as long as the mounts on them. */
        r = verity_context_relinquish(&e->verity_ctx);
        if (r < 0)
                return named_by_callee(r, e->image);
        return 0;
}

/* The raw syscall changes the groups of this thread only (glibc's setgroups() would change every
 * thread's); file access checks use the supplementary groups too, so the caller's (root's) must not
 * count while a user's file is opened. */
static int thread_setgroups(size_t n, const gid_t *groups) {
        return syscall(SYS_setgroups, n, groups) < 0 ? negative_errno() : 0;
}

FsIds fsids_switch(bool active, uid_t uid, gid_t gid) {
        FsIds saved = { .active = active };
        int n;

        if (!active)
                return saved;
        n = getgroups(0, NULL);
        if (n > 0 && (saved.groups = calloc((size_t) n, sizeof(gid_t))))
                saved.n_groups = getgroups(n, saved.groups);
        (void) thread_setgroups(1, &gid);
        /* setfs[ug]id return the previous value and cannot fail in a way we could act on. */
        saved.gid = (gid_t) setfsgid(gid);
        saved.uid = (uid_t) setfsuid(uid);
        return saved;
}

void fsids_restore(const FsIds *saved) {
        if (!saved->active)
                return;
        (void) setfsuid(saved->uid);
        (void) setfsgid(saved->gid);
        (void) thread_setgroups(saved->n_groups > 0 ? (size_t) saved->n_groups : 0, saved->groups);
        free(saved->groups);
}

int extension_open(Image *image, const ExtensionOptions *o, Extension **ret) {
        _cleanup_(extension_freep) Extension *e = NULL;
        int r;

        assert(image);
        assert(o);
        assert(ret);
        e = calloc(1, sizeof(Extension));
        if (!e) {
                image_free(image);
                return -ENOMEM;
        }
        e->image = image;
        e->mounts = IMAGE_MOUNTS_NULL;
        /* A user's image is opened with the user's file access rights: a symlink to a file only
         * root may read gets EACCES, not dissected. Loop devices and mounts need root's. */
        FsIds saved = fsids_switch(o->open_as_user, o->uid, o->gid);
        sx_clear_error();
        r = dissect_image(e->image, &e->dissected);
        if (r < 0)
                r = named_by_callee(r, e->image);
        else
                r = extension_check_trust(e, o);
        fsids_restore(&saved);
        if (r < 0)
                return r;
        if (o->mount && !e->policy_refusal) {
                r = extension_mount(e, o);
                if (r < 0)
                        return r;
                r = extension_read_release(e, o);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(e);
        return 0;
}

int extension_hierarchy(const Extension *e, const char *hierarchy, int *ret_mnt_fd, char **ret_subdir, int *ret_dir_fd) {
        const char *rest = NULL;
        _cleanup_free_ char *sub = NULL;
        int mnt, r, dir_fd;

        if (e->mounts.usr_fd >= 0 && (rest = startswith_ptr(hierarchy, "/usr")) && (*rest == 0 || *rest == '/')) {
                mnt = e->mounts.usr_fd;
                sub = strdup(rest + (*rest == '/'));
        } else if (e->mounts.root_fd >= 0) {
                mnt = e->mounts.root_fd;
                sub = strdup(hierarchy + 1);
        } else
                return -ENOENT;
        if (!sub)
                return -ENOMEM;
        r = image_mounts_open_hierarchy(&e->mounts, hierarchy, &dir_fd);
        if (r < 0)
                return r == -ENOENT ? r : fail_naming(r, e->image);
        *ret_mnt_fd = mnt;
        *ret_subdir = TAKE_PTR(sub);
        *ret_dir_fd = dir_fd;
        return 0;
}
