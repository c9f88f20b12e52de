/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The client side of sysext-idmapd: ask the broker for the layers of extension images, idmapped
 * into a user namespace of ours (io.sysext-idmap.Broker.MountOverlay), and build the read-only
 * overlays from them in the current mount namespace. Used by `run` as an ordinary user and by
 * `merge` inside an unprivileged container.
 *
 * The images travel as file descriptors opened by the caller (with its own permissions), never as
 * paths; the broker knows the caller by SO_PEERCRED only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define BROKER_SOCKET_DEFAULT "/run/sysext-idmapd/io.systemd.MountFileSystem"

typedef struct BrokerClientHierarchy {
        char *path;                     /* "/usr" */
        int *layer_fds;                 /* top first: detached idmapped mounts of each layer's subtree */
        size_t n_layer_fds;
        int overlay_fd;                 /* the broker's finished overlay (asked for with want_overlay), or -EBADF */
} BrokerClientHierarchy;

typedef struct BrokerClientLayers {
        BrokerClientHierarchy *hierarchies;
        size_t n_hierarchies;
        char **extensions;              /* merged, bottom first */
        char **trust;                   /* parallel to extensions */
        char **skipped;                 /* left out by the broker */
        char **skipped_reason;          /* parallel to skipped */
} BrokerClientLayers;
void broker_client_layers_done(BrokerClientLayers *l);

/* Is there a socket at path? 1 yes, 0 no (a missing path or something else). */
int broker_socket_exists(const char *path);

/* Calls MountOverlay on the broker at socket: image_fds (borrowed; NULL/0 = the host's trusted
 * extensions), userns_fd (borrowed; -EBADF = no idmapping, root only), hierarchies (NULL = the
 * broker's default), policy (NULL = none; can only tighten the broker's). The received layers are
 * put *below* those already in *l (so a second call adds lower layers). want_overlay: also ask for
 * the broker's finished overlay of each hierarchy (over the host's own hierarchy, for kernels whose
 * overlayfs takes no layer fds); a call that gets one must be the only call for *l (-EINVAL
 * otherwise: overlays from two calls do not stack). Errors: -ENOTCONN with a
 * message saying the broker is not running when nobody listens at socket; the broker's error name
 * and message otherwise (-EPERM for PermissionDenied/NotEntitled, -ERFKILL for
 * DeniedByImagePolicy, -EINVAL for InvalidParameter, -EIO for the rest). */
int broker_client_mount_overlay(const char *socket, const int *image_fds, size_t n_image_fds, int userns_fd,
                                char * const *hierarchies, const char *policy, bool want_overlay,
                                BrokerClientLayers *l);

/* MountImage without a user namespace (root front ends: the PAM module, merge --namespace-of):
 * plain, read-only, detached clones of the broker's shared superblock mount of each partition. */
typedef struct BrokerClientPartition {
        char *designator;               /* "root", "usr", as the broker says */
        int mount_fd;
        char *fstype;
        uint64_t offset, size;          /* of the partition in the image, as the broker found it */
        int partno;                     /* -1 if not given (a bare file system) */
} BrokerClientPartition;

typedef struct BrokerClientImage {
        BrokerClientPartition partitions[2];
        size_t n_partitions;
        char *policy_used;              /* the broker's effective policy, or NULL */
} BrokerClientImage;
void broker_client_image_done(BrokerClientImage *i);

/* Calls io.systemd.MountFileSystem.MountImage for image_fd (borrowed) with policy (NULL = none; it
 * can only tighten the broker's). Errors as broker_client_mount_overlay(). *ret untouched on
 * failure.
 *
 * Both calls check, for root of the initial user namespace, that root serves the socket
 * (SO_PEERCRED uid 0), before anything is sent: -EACCES with a message naming the uid otherwise
 * (no error the broker replies with maps to -EACCES). */
int broker_client_mount_image(const char *socket, int image_fd, const char *policy, BrokerClientImage *ret);

/* In the current mount namespace (which must be owned by the user namespace the layers are mapped
 * into, or by an ancestor): clone each layer (a mount made in another namespace must be cloned
 * before overlayfs takes it), build one read-only, nodev, nosuid overlay per hierarchy with the
 * namespace's own hierarchy as the bottom layer (a hierarchy with the broker's finished overlay
 * gets that one instead), then attach them all. A hierarchy without layers,
 * or missing in this namespace, is left alone and named in *ret_missing (may be NULL). Returns
 * the number of overlays attached. */
int broker_client_layers_attach(const BrokerClientLayers *l, char ***ret_missing);
