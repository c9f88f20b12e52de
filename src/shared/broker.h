/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The broker: what sysext-idmapd does for a caller it knows only by SO_PEERCRED. It mounts images,
 * directories and overlays as detached mounts idmapped into the caller's user namespace, decides
 * which images are the administrator's (trusted) and which need a signature, and keeps one plain
 * superblock mount per distinct image in a layer store so that every consumer shares it.
 *
 * Nothing here attaches a mount anywhere: every mount fd handed out is detached, read-only, nodev,
 * nosuid and idmapped with the caller's namespace.
 *
 * Errors (negative errno, message in sx_last_error()). The daemon maps them:
 *   -EPERM        a namespace rule failed (message starts with "namespace"): NotEntitled;
 *                 also: the caller may not use this object (not its directory, ...)
 *   -EACCES       the caller may not do this (e.g. root-only: no namespace fd from a non-root caller,
 *                 block device from a non-root caller): PermissionDenied
 *   -ERFKILL      the (intersected) image policy refuses the image: an untrusted image that is not
 *                 signed by a trusted key, partition protection, absent/unused rules, file system
 *                 type: DeniedByImagePolicy
 *   -EKEYREJECTED a verity signature that does not match the root hash: VerityFailure
 *   -EBADMSG      corrupt image (bad GPT, verity data does not match, ...): IncompatibleImage or
 *                 VerityFailure (the message says which)
 *   -EINVAL       a bad argument (policy string, mode, hierarchy): InvalidParameter
 *                 (-EBADSLT/-EBADRQC/-ENOTUNIQ from a caller policy string: BadImagePolicy)
 *   -EBADFD       the fd is not of the kind required (not a regular file/block device/directory)
 *   -EMEDIUMTYPE  no usable partition / not an extension image: IncompatibleImage
 *   -EFBIG        an untrusted image without kernel verity is larger than PrivateCopyMax
 *   -ENOMEM, -EIO, ... anything else.
 * Per-function refusals are listed at each function. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "id128-util.h"
#include "policy.h"
#include "util.h"

typedef struct BrokerCaller {
        uid_t uid;                              /* SO_PEERCRED */
        gid_t gid;
        pid_t pid;
        int pidfd;                              /* SO_PEERPIDFD (borrowed), -EBADF where the kernel has none */
} BrokerCaller;

typedef struct BrokerConfig {                   /* /etc/sysext-idmap/sysext-idmapd.conf [Broker] */
        ImagePolicy *trusted_policy;            /* NULL = systemd-sysext default */
        bool allow_unsigned_untrusted;          /* AllowUnsignedUntrusted=, default no */
        uint64_t private_copy_max;              /* PrivateCopyMax=, default 1 GiB */
        char *root;                             /* for tests: where the "host" is (--root=), NULL = / */
} BrokerConfig;

#define BROKER_PRIVATE_COPY_MAX_DEFAULT (UINT64_C(1) << 30)
#define BROKER_CONFIG_PATH "/etc/sysext-idmap/sysext-idmapd.conf"

/* Loads root + BROKER_CONFIG_PATH ([Broker] ImagePolicy=, AllowUnsignedUntrusted=, PrivateCopyMax=);
 * a missing file gives the defaults. root NULL = "/", copied into ret->root. Errors: -EINVAL (or the
 * policy parser's errno) for a bad value, with a message naming the key. *ret untouched on failure. */
int broker_config_load(const char *root, BrokerConfig *ret);
void broker_config_done(BrokerConfig *c);

/* The caller's target user namespace, checked against the rules of userns-check.h. */
typedef struct BrokerTarget BrokerTarget;

/* Checks userns_fd against the rules (userns-check.h) for `who` and takes ownership of userns_fd
 * (also on failure). userns_fd < 0: no idmapping requested, allowed only for root callers
 * (-EACCES otherwise); mounts are then handed out without idmapping.
 * Refusals: -EPERM "namespace ..." for every rule failure (not a user namespace, owned by someone
 * else, nested, maps unwritten, maps outside the caller's entitlement). */
int broker_target_open(const BrokerCaller *who, int userns_fd, BrokerTarget **ret);
BrokerTarget *broker_target_free(BrokerTarget *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(BrokerTarget *, broker_target_free);
/* The namespace fd (borrowed), or -EBADF for none. */
int broker_target_userns_fd(const BrokerTarget *t);

/* ---- layer store: pinned plain (not idmapped) detached mounts, by key ----
 * Keys: "verity:<roothash hex>" for verity-protected partitions (shared by every caller),
 *       "file:<st_dev>:<st_ino>:<size>:<mtime_nsec>:<ctime_nsec>:<partno>" (trusted images only). */
typedef struct BrokerLayerStore BrokerLayerStore;
int broker_store_new(BrokerLayerStore **ret);
BrokerLayerStore *broker_store_free(BrokerLayerStore *s);      /* closes the pinned fds */
DEFINE_TRIVIAL_CLEANUP_FUNC(BrokerLayerStore *, broker_store_free);
/* 1 found (*ret_pinned_fd borrowed, stays owned by the store), 0 not found (*ret = -EBADF). */
int broker_store_lookup(BrokerLayerStore *s, const char *key, int *ret_pinned_fd);
/* 1: key's entry is dormant (gc closed its pin while the superblock lived on, only through mounts no
 * mount table shows, such as an overlay's layers): *ret_root (the pin's root: device, inode) and
 * *ret_fstype tell broker_remount_superblock() how to get the superblock back; 0: not dormant. */
int broker_store_lookup_dormant(BrokerLayerStore *s, const char *key, struct stat *ret_root, const char **ret_fstype);
/* Takes pinned_fd (also on failure). An existing entry of the same key is replaced (its fd closed;
 * a dormant one becomes pinned again).
 * -EINVAL for an empty key or a negative fd. */
int broker_store_insert(BrokerLayerStore *s, const char *key, int pinned_fd);
size_t broker_store_size(const BrokerLayerStore *s);
/* Entry i (0 ≤ i < size), key and fd borrowed (-EBADF: dormant); -ENXIO for i out of range. */
int broker_store_get(const BrokerLayerStore *s, size_t i, const char **ret_key, int *ret_fd);
/* 1 removed, 0 no such key. */
int broker_store_remove(BrokerLayerStore *s, const char *key);
/* Closes the pin of every entry whose superblock is mounted nowhere but in the pin: no mount of its
 * st_dev in the mountinfo of any mount namespace (walks /proc/PID/mountinfo once per distinct mount
 * namespace). An overlay's layers are in no mountinfo, so for a superblock on a block device the
 * entry then stays, dormant, holding the device open, as long as a file system still claims that
 * device (an O_EXCL open fails with EBUSY): the superblock lives on, and a later caller gets it back
 * by mounting the device again. A dormant entry whose device nothing claims any more is dropped
 * (its device closed: an autoclear loop device goes). A superblock without a block device
 * (file-backed erofs) cannot be found again: its entry is dropped with its pin.
 * ret_removed_keys (may be NULL) gets the keys whose pins were closed or whose entries went
 * (broker_store_lookup_dormant() tells which are dormant now). Returns their number. */
int broker_store_gc(BrokerLayerStore *s, char ***ret_removed_keys);
/* Same, with the /proc to walk given (tests); proc NULL = "/proc". */
int broker_store_gc_in(BrokerLayerStore *s, const char *proc, char ***ret_removed_keys);

/* ---- MountImage ---- */
typedef struct BrokerPartition {
        const char *designator;                 /* "root", "usr" (static string) */
        int mount_fd;                           /* detached, idmapped, ro,nodev,nosuid; owned */
        char *fstype;
        uint64_t offset, size;                  /* of the partition in the image (bare fs: 0, file size) */
        int partno;                             /* GPT partition number, -1 for a bare file system */
        sd_id128_t uuid;                        /* GPT partition UUID, null for a bare file system */
        bool growfs, read_only;                 /* GPT flags */
        char *roothash;                         /* hex, or NULL without verity */
        char *store_key;                        /* key under which the plain mount is pinned, or NULL
                                                   (not shareable) */
        int new_pinned_fd;                      /* >= 0 if this call made a new superblock mount the
                                                   caller (worker) should hand to the store owner
                                                   under store_key; owned */
} BrokerPartition;

typedef struct BrokerImageResult {
        BrokerPartition partitions[2];
        size_t n_partitions;
        char *image_name;
        uint64_t image_size;
        char *policy_used;                      /* the effective policy, simplified string */
        char *trust;                            /* "signed", "verity", "unprotected" */
        bool trusted;                           /* the administrator's image (by inode) */
        char *trust_reason;                     /* why it is not trusted, or NULL */
} BrokerImageResult;
void broker_image_result_done(BrokerImageResult *r);

/* MountImage: image_fd is borrowed (a regular file; a block device only for root callers). It is
 * reopened through its /proc/self/fd magic link (the same inode, with the caller's file access
 * rights for non-root callers), never through a path. Trusted: a root caller's image (root could
 * mount it itself), or the administrator's by inode (broker-internal.h). Sharing: verity partitions
 * by root hash, trusted images by file identity; untrusted unverified ones are never shared.
 * caller_policy may be NULL (no tightening). store may be NULL (no sharing; every partition is a
 * new superblock and new_pinned_fd stays -EBADF). target NULL = no idmapping (root callers only).
 * Refusals:
 *   -EBADFD   image_fd is not a regular file (or block device for root)
 *   -EACCES   a block device from a non-root caller
 *   -ERFKILL  refused by the (intersected) image policy, including an untrusted image not signed
 *             by a trusted key (unless AllowUnsignedUntrusted=yes)
 *   -EKEYREJECTED  signature does not match; -EBADMSG corrupt image or verity mismatch
 *   -EFBIG    untrusted image needing a private copy larger than PrivateCopyMax
 *   -EMEDIUMTYPE  no root/usr partition to mount
 *   caller_policy parse errors as policy.h (-EINVAL, -EBADSLT, -EBADRQC, -ENOTUNIQ)
 * *ret untouched on failure (zero it first; broker_image_result_done() is safe on a zeroed one). */
int broker_mount_image(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                       int image_fd, const char *caller_policy, BrokerLayerStore *store,
                       BrokerImageResult *ret);

/* MountDirectory: dir_fd borrowed (an O_DIRECTORY or O_PATH fd of a directory); returns a detached,
 * read-only, nodev, nosuid mount fd of a clone of that directory (open_tree(OPEN_TREE_CLONE|
 * AT_RECURSIVE) of the fd, never a path).
 * The directory must be the caller's, or owned by the foreign range with an ancestor (up to 16
 * levels) of the caller's; root callers: any. mode (systemd's MountDirectory modes):
 *   "identity"  no idmapping: ids as on disk (the caller's files show as its host uid)
 *   "root"      the caller's uid/gid appear as the target namespace's root (the outside id its
 *               inside 0 maps to), every other id as nobody
 *   "foreign"   the foreign range FOREIGN_UID_BASE+N appears as the namespace's N; the namespace
 *               must map inside 0…65535 in one extent (-EINVAL otherwise)
 *   "auto"/NULL foreign if owned by the foreign range, else root
 * Refusals: -EPERM not the caller's directory (or the foreign one's parent is not the caller's);
 * -EBADFD not a directory; -EINVAL unknown mode; -EACCES target NULL from a non-root caller. */
int broker_mount_directory(const BrokerCaller *who, BrokerTarget *target, int dir_fd,
                           const char *mode, int *ret_mount_fd);

/* ---- MountOverlay ---- */
typedef struct BrokerHierarchy {
        char *hierarchy;                        /* "/usr" */
        int *layer_fds;                         /* top first, detached idmapped subtrees; owned */
        size_t n_layer_fds;
        int overlay_fd;                         /* -EBADF unless want_overlay and it could be made */
} BrokerHierarchy;

typedef struct BrokerOverlayResult {
        BrokerHierarchy *hierarchies;
        size_t n_hierarchies;
        char **extensions;                      /* merged extensions, merge order (bottom first) */
        char **trust;                           /* parallel to extensions */
        char **skipped;                         /* names not merged */
        char **skipped_reason;                  /* parallel to skipped */
        /* new superblock mounts for the store (parallel arrays) */
        char **new_keys;
        int *new_pinned_fds;                    /* owned */
        size_t n_new;
} BrokerOverlayResult;
void broker_overlay_result_done(BrokerOverlayResult *r);

/* image_fds NULL/n=0: the host's trusted extensions (image_discover() under cfg->root, each judged
 * by inode: untrusted and incompatible ones, and directories, land in skipped[] with a reason;
 * compatibility checked against cfg->root's os-release); otherwise each fd as broker_mount_image()
 * judges it (a refused image fails the call with that image's errno; no extension-release check:
 * the sandbox is the caller's). Merge order: as given / discovery order, the last one on top. hierarchies NULL = {"/usr", "/opt"}; each must be absolute and one of the sysext
 * hierarchies (-EINVAL). want_overlay: also a finished read-only overlay per hierarchy with the
 * host's hierarchy (under cfg->root) as the bottom layer (overlay_fd stays -EBADF if the kernel
 * refuses). Refusals: as broker_mount_image(). *ret untouched on failure. */
int broker_mount_overlay(const BrokerConfig *cfg, const BrokerCaller *who, BrokerTarget *target,
                         const int *image_fds, size_t n_image_fds, char * const *hierarchies,
                         const char *caller_policy, bool want_overlay, BrokerLayerStore *store,
                         BrokerOverlayResult *ret);
