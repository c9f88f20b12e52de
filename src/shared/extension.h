/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One extension image taken from discovery to "ready to be layered": dissected, mounted as
 * detached mounts, its extension-release found and checked against the host. */

#include <stdbool.h>

#include "dissect.h"
#include "extension-release.h"
#include "image.h"
#include "policy.h"
#include "util.h"
#include "verity.h"

typedef struct HostInfo {
        char *root;             /* NULL or "/" for the host */
        ReleaseFile *release;
        const char *scope;      /* "system" or "initrd" */
} HostInfo;

int host_info_load(const char *root, HostInfo *ret);
void host_info_done(HostInfo *h);

typedef struct Extension {
        Image *image;
        DissectedImage *dissected;
        ImageMounts mounts;
        ReleaseFile *release;
        char *release_path;
        bool compatible;
        char *reason;           /* why not compatible */
        bool reload_manager;    /* EXTENSION_RELOAD_MANAGER=1 */

        /* trust */
        VeritySettings *verity;                 /* root hashes, signatures, signers */
        VerityContext verity_ctx;               /* how each partition was opened */
        VerityProtection protection[2];         /* what the image offers, [PARTITION_ROOT], [PARTITION_USR] */
        PartitionPolicyFlags use[2];            /* what the policy let us use */
        char *policy_refusal;                   /* report_policy: why the policy refuses the image */
        uint64_t mount_attrs[2];                /* extra MOUNT_ATTR_* per [PARTITION_ROOT], [PARTITION_USR] */

        bool from_broker;                       /* partitions from the broker's layer store */
        char *provider_notice;                  /* why the broker could not provide them, or NULL */
} Extension;

Extension *extension_free(Extension *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(Extension *, extension_free);
void extension_array_free(Extension **v, size_t n);
/* Close the image mounts of all extensions in one dissolution (mounts_dissolve()). Moving a mount
 * acts on it for every process holding it: only when no other process still uses these mounts (a
 * child forked with them that is still building its overlays, say). */
void extension_array_dissolve_mounts(Extension **v, size_t n);

struct ExtensionOptions;
/* For e (dissected, trust checked, e->verity_ctx initialised): 1 with *ret the mounts of the
 * partitions e uses; 0: not provided, mount here silently; negative errno with a message: not
 * provided, mount here and say why (e->provider_notice). */
typedef int (*ExtensionProvideFunc)(Extension *e, const struct ExtensionOptions *o, void *userdata, ImageMounts *ret);

typedef struct ExtensionOptions {
        const HostInfo *host;
        ImageClass image_class;         /* where its extension-release is, which keys it checks */
        bool force;             /* compatible regardless of extension-release fields */
        bool mount;             /* false: dissect and check trust only (no extension-release for raw images) */
        const ImagePolicy *policy;      /* NULL = systemd-sysext's default */
        VerityMode verity_mode;
        const char *verity_root;        /* where verity.d lives (--root), NULL = / */
        bool report_policy;             /* a refusal by the policy is recorded, not an error (dissect) */
        bool open_as_user;              /* open the image file and sidecars with this fsuid/fsgid */
        uid_t uid;
        gid_t gid;
        /* A user controls the image (it lies in a home, or in a directory others may write): it is
         * used only if signed by a trusted certificate (the policy is intersected with
         * root=signed+absent:usr=signed+absent) and only with bytes that cannot change after the
         * check: dm-verity, or a private copy of at most private_copy_max bytes (0: none). */
        bool user_controlled;
        const char *user_controlled_why;        /* for messages, or NULL */
        uint64_t private_copy_max;
        /* Another source of the image's partitions than mounting them here, asked first (root
         * front ends: the broker's layer store, layer-provider.h); NULL = always mount here. */
        ExtensionProvideFunc provide;
        void *provide_userdata;
} ExtensionOptions;

/* Switch the filesystem ids for opening files a user named (undone by fsids_restore). */
typedef struct FsIds {
        bool active;
        uid_t uid;
        gid_t gid;
        gid_t *groups;          /* the caller's supplementary groups, restored afterwards */
        int n_groups;
} FsIds;
FsIds fsids_switch(bool active, uid_t uid, gid_t gid);
void fsids_restore(const FsIds *saved);

/* The protection of a designator as the image policy names it. */
PartitionPolicyFlags protection_to_policy_flag(VerityProtection p);
/* "signed", "verity", "unprotected" or "absent", for status and list: the best of root and usr. */
const char *extension_trust_summary(const Extension *e);
const VerityResult *extension_verity_result(const Extension *e);

/* Takes ownership of image (also on failure). A bad image (unreadable, corrupt, tampered, refused
 * by the image policy, no extension-release, ships os-release) is an error with a message naming
 * it; an incompatible one is returned with compatible=false and a reason. */
int extension_open(Image *image, const ExtensionOptions *o, Extension **ret);

/* The detached mount and subdirectory that hold `hierarchy` in this extension. -ENOENT if the
 * image does not provide it. */
int extension_hierarchy(const Extension *e, const char *hierarchy, int *ret_mnt_fd, char **ret_subdir, int *ret_dir_fd);
