/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Merge markers: what a merged hierarchy carries in its top (metadata) layer, and how it is read
 * back. systemd-sysext's layout, which it also understands:
 *   .systemd-sysext/dev          "MAJOR:MINOR" of the overlay itself: is this a sysext merge?
 *   .systemd-sysext/extensions   the merge's extensions' names, one a line, merge order; as with
 *                                systemd-sysext every hierarchy lists all of them, also those
 *                                that have no layer in it
 * (a confext's: .systemd-confext/dev and .systemd-confext/confexts, image-class.h) and ours on top
 * of it:
 *   .systemd-sysext/sysext-idmap.json   who merged what when, with which mapping and trust, which
 *                                discovered images were skipped and why, and the identity of
 *                                the merge's inputs (refresh compares it to skip an unchanged merge) */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "extension.h"
#include "image-class.h"
#include "util.h"

#define SYSEXT_IDMAP_META_FILE "sysext-idmap.json"
#define MARKERS_ORIGIN_DEFAULT "sysext-idmap"

/* A discovered image a merge left out, and why ("/var/lib/extensions/c.raw: not a valid image"). */
typedef struct SkippedImage {
        char *name, *path, *reason;
} SkippedImage;
void skipped_images_free(SkippedImage *s, size_t n);

/* What goes into the markers of one hierarchy's merge. */
typedef struct MarkersInfo {
        const char *origin;             /* who merged; NULL = MARKERS_ORIGIN_DEFAULT */
        ImageClass image_class;         /* whose marker directory */
        const char *hierarchy;          /* "/usr" */
        const char *root;               /* "/" for the host */
        const char *idmap_spec;         /* "identity", "user:NAME", … */
        const char *idmap_resolved;     /* what a userns:/pid: mapping mapped, or NULL */
        const char * const *layer_idmap_specs;  /* each extension's own mapping (auto), or NULL: idmap_spec */
        Extension * const *exts;        /* every extension of the merge … */
        const bool *used;               /* … and whether it has a layer in this hierarchy */
        size_t n_exts;
        char * const *hierarchies;      /* the merge's configured hierarchies (part of its identity) */
        const SkippedImage *skipped;    /* discovered images left out */
        size_t n_skipped;
        /* how the overlays are mounted (part of the identity: refresh must not skip a change) */
        const char *mutable_mode;       /* "no", "yes", … */
        bool noexec;
        const char *overlay_options;    /* or NULL */
        json_object *inputs;            /* the merge's inputs stamp (inputs-stamp.h), or NULL */
} MarkersInfo;

/* Write the marker directory into the metadata layer (a writable detached tmpfs). path names the
 * hierarchy in messages. The "dev" marker is written by markers_write_dev() once the overlay exists. */
int markers_write(int meta_fd, const char *path, const MarkersInfo *m);
/* Record ovl_fd's device in the metadata layer meta_fd: from now on the overlay counts as merged. */
int markers_write_dev(int meta_fd, int ovl_fd, const char *path);

/* Is dir_fd the root of a sysext or confext overlay (ours or systemd's)? True if
 * .systemd-sysext/dev (.systemd-confext/dev) inside it holds the device number of dir_fd itself. */
int is_sysext_mount(int dir_fd);
/* The marker directory of the merge on dir_fd: ".systemd-sysext", or ".systemd-confext". */
const char *markers_meta_dir_at(int dir_fd);
/* Is dir_fd the root of a merge that `origin` made (metadata "origin")? 1 yes, 0 no. */
int is_origin_mount(int dir_fd, const char *origin);

/* Our metadata of the merge on dir_fd, or NULL (none, systemd-sysext's merge, unreadable).
 * Release with json_object_put(). */
json_object *markers_read_meta(int dir_fd);
/* Did an extension of that merge ask for a service manager reload (EXTENSION_RELOAD_MANAGER=1)? */
bool markers_meta_wants_reload(json_object *meta);
/* A string member of the metadata, copied; NULL if absent or not a string. */
char *markers_meta_string(json_object *meta, const char *key);
/* When the merge was made (metadata "since"), in µs; 0 if unknown. */
uint64_t markers_meta_since_usec(json_object *meta);

/* Does the metadata record the same inputs as m would: the same images (by verity root hash, else
 * by device, inode, size and mtime of the image file or directory), the same skipped ones, the
 * same mapping and hierarchies? A refresh with nothing changed is skipped. false without metadata. */
bool markers_meta_identity_equal(json_object *meta, const MarkersInfo *m);
/* The skipped images recorded in the metadata; *ret NULL and *ret_n 0 if there are none. */
int markers_meta_skipped(json_object *meta, SkippedImage **ret, size_t *ret_n);

/* The names in .systemd-sysext/extensions of the merge on dir_fd. */
int markers_read_names(int dir_fd, char ***ret);
/* When a merge without our metadata (systemd-sysext's) was made: its marker directory's mtime, in
 * µs; 0 if unknown. */
uint64_t markers_since_usec(int dir_fd);

/* One layer of a merge, as its metadata recorded it (status). */
typedef struct LayerStatus {
        char *name, *path, *type, *version, *idmap;
        char *verity;           /* signed, verity, unprotected */
        char *checked_by;       /* kernel, userspace, none */
        char *root_hash, *signer;
} LayerStatus;

/* The layers recorded in the metadata ("extensions"); *ret NULL and *ret_n 0 if there are none. */
int markers_meta_layers(json_object *meta, LayerStatus **ret, size_t *ret_n);
void layer_status_done(LayerStatus *l);
