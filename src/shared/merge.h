/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* merge / unmerge / refresh / status: the state machine over hierarchies, with a lock so that
 * concurrent invocations are serialised. Nothing becomes visible before the very last step; a
 * failure before it leaves mounts, loop devices and files as they were. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "idmap.h"
#include "image-class.h"
#include "markers.h"
#include "mutable.h"
#include "policy.h"
#include "util.h"
#include "verity.h"

/* Informational lines for the front end to show ("Merged extensions into '/usr'."), with the
 * userdata the front end put next to it (the PAM module's handle, say). */
typedef void (*NoticeFunc)(const char *message, void *userdata);

/* One explicitly named image: where it is, where it comes from and how far it is trusted. The
 * strings belong to the caller. */
typedef struct ImageSource {
        const char *path;
        uint64_t attrs[2];              /* extra MOUNT_ATTR_* for [PARTITION_ROOT], [PARTITION_USR] */
        bool open_as_user;              /* open the image and its sidecars with this fsuid/fsgid */
        uid_t uid;
        gid_t gid;
        bool user_controlled;           /* a user may change it: used only signed, with bytes that cannot
                                         * change after the check (ExtensionOptions.user_controlled) */
        const char *user_controlled_why; /* for messages: "it lies in a home directory" */
        bool discovered;                /* found, not named: incompatible or shadowed by a named one → left out */
        const char *name;               /* the name discovery gave it (a symlink's, not its target's), or NULL */
} ImageSource;

/* --noexec=: unset, the image class decides (confext: noexec, sysext: exec); else yes or no. */
typedef enum NoexecMode { NOEXEC_DEFAULT = 0, NOEXEC_NO, NOEXEC_YES } NoexecMode;

typedef struct MergeContext {
        ImageClass image_class;         /* sysext (/usr, /opt) or confext (/etc): image-class.h */
        const char *root;               /* NULL or "/" = the host */
        char **hierarchies;             /* absolute paths relative to root: "/usr", "/opt" */
        Idmap *idmap;                   /* NULL = identity */
        const ImageSource *images;      /* n_images explicit images; NULL = discover */
        size_t n_images;
        bool force;
        bool no_reload;
        pid_t namespace_of;             /* > 0: merge into this process's mount namespace */
        const ImagePolicy *policy;      /* NULL = systemd-sysext's default */
        VerityMode verity_mode;
        bool skip_broken;               /* an image that fails is reported through notice and left out (PAM) */
        bool always_refresh;            /* refresh even if nothing changed (--always-refresh) */
        const char *origin;             /* who merged, recorded in the metadata; NULL = "sysext-idmap" */
        bool stack;                     /* layer over whatever is on the hierarchy now (run) */
        bool untrusted;                 /* overlay nosuid: a user's command runs on it (run --user) */
        uint64_t private_copy_max;      /* user-controlled images without dm-verity: largest private copy */
        MutableMode mutable_mode;       /* --mutable=; refused with namespace_of, stack and untrusted */
        NoexecMode noexec;              /* MOUNT_ATTR_NOEXEC on the overlays */
        const char *overlay_options;    /* $SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS: replaces the writable
                                         * merge's OVERLAY_MUTABLE_OPTIONS; NULL = the default */
        const char *broker;             /* root front ends (PAM, --namespace-of): the broker's socket; trusted
                                         * images' partitions come from its layer store when it runs
                                         * (layer-provider.h). NULL = always mounted here */
        NoticeFunc notice;              /* NULL = quiet */
        void *notice_userdata;
} MergeContext;

/* Hierarchies from a colon-separated list of absolute paths (NULL or "" = /usr:/opt); what names
 * the list's origin in messages ("SYSTEMD_SYSEXT_HIERARCHIES", "hierarchies="). The library reads
 * no environment: the CLI passes $SYSTEMD_SYSEXT_HIERARCHIES, the PAM module its option. */
int hierarchies_parse(const char *spec, const char *what, char ***ret);

int merge_extensions(const MergeContext *c);

/* The pieces of a merge, for callers that attach somewhere else (`run`, the PAM module): open a
 * session (host side; it keeps a pointer to c, which must outlive it), load the extensions
 * (dissect, mount detached, idmap), then, in the mount namespace where the overlays belong, apply.
 * The session holds the effective root and mapping (--namespace-of maps into the target's user
 * namespace), so c is never copied to change them. */
typedef struct MergeSession MergeSession;
int merge_session_open(const MergeContext *c, MergeSession **ret);
int merge_session_load(MergeSession *s);
size_t merge_session_n_extensions(const MergeSession *s);
int merge_session_apply_here(MergeSession *s);
/* Once this process's overlays hold the layers: close the session's image mounts in one
 * dissolution (mounts_dissolve()). Moving a mount acts for every process that holds it, so never
 * while another process (the parent of a `run` child, say) may still build overlays from them. */
void merge_session_dissolve_mounts(MergeSession *s);
void merge_session_free(MergeSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MergeSession *, merge_session_free);
int unmerge_extensions(const MergeContext *c);
int refresh_extensions(const MergeContext *c);

/* LayerStatus: markers.h */
typedef struct HierarchyStatus {
        char *hierarchy;                /* "/usr" */
        char *path;                     /* resolved, including the root */
        bool merged;
        bool ours;                      /* merged by sysext-idmap (our metadata present) */
        char **extensions;
        char *idmap;
        char *device;                   /* "major:minor" of the overlay */
        uint64_t since_usec;            /* 0 if unknown */
        bool path_fallback;
        LayerStatus *layers;
        size_t n_layers;
        SkippedImage *skipped;          /* discovered images the merge left out, and why */
        size_t n_skipped;
} HierarchyStatus;

void hierarchy_status_free_many(HierarchyStatus *s, size_t n);
int status_hierarchies(const MergeContext *c, HierarchyStatus **ret, size_t *ret_n);
