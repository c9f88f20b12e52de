/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* `run`: a command in a fresh mount namespace whose /usr and /opt carry the given extensions,
 * each layer idmapped into the command's user namespace. The service-side counterpart of
 * ExtensionImages= + PrivateUsers=. */

#include <stdbool.h>
#include <stdint.h>

#include "idmap.h"
#include "merge.h"
#include "util.h"

typedef enum PrivateUsers {
        PRIVATE_USERS_NO,       /* no user namespace; layers mapped with --idmap (identity by default) */
        PRIVATE_USERS_PICK,     /* a free 65536-id range, root inside = its first id outside */
        PRIVATE_USERS_MAP,      /* INSIDE:OUTSIDE:COUNT, read as a uid_map line */
        PRIVATE_USERS_USERNS,   /* join an existing user namespace (userns:PATH) */
        PRIVATE_USERS_SUBUID,   /* an ordinary user's /etc/subuid range through newuidmap (broker only) */
        _PRIVATE_USERS_MAX,
        _PRIVATE_USERS_INVALID = -EINVAL,
} PrivateUsers;

typedef struct PrivateUsersSpec {
        PrivateUsers mode;
        IdmapExtent map;        /* PRIVATE_USERS_MAP */
        char *userns_path;      /* PRIVATE_USERS_USERNS */
} PrivateUsersSpec;

int private_users_parse(const char *s, PrivateUsersSpec *ret);
void private_users_done(PrivateUsersSpec *p);

/* One ExtensionImages= entry: "[-]PATH[:PARTITION:OPTIONS]...", PARTITION root or usr, OPTIONS a
 * comma list of ro, nosuid, nodev (noexec is refused: it cannot be confined to one layer). */
typedef struct ImageArg {
        char *path;
        bool optional;          /* leading '-': skip if missing */
        uint64_t attrs[2];      /* MOUNT_ATTR_* for [PARTITION_ROOT], [PARTITION_USR] */
} ImageArg;

int image_arg_parse(const char *s, ImageArg *ret);
void image_arg_done(ImageArg *a);

typedef struct RunOptions {
        ImageArg *images;
        size_t n_images;
        bool discover;                  /* also every discovered extension */
        PrivateUsersSpec private_users;
        const char *user;               /* run as this user; layers mapped user:NAME, overlay nosuid,nodev */
        Idmap *idmap;                   /* --idmap for PRIVATE_USERS_NO */
        const ImagePolicy *policy;
        VerityMode verity_mode;
        bool force;
        char **hierarchies;
        char **argv;                    /* the command */
        NoticeFunc notice;              /* NULL = quiet */
        void *notice_userdata;
        /* Through the broker (run-broker.h): its socket, or NULL for today's root path. With
         * broker_optional (root, socket found but --broker= not given) an unreachable broker
         * means today's path. broker_policy: --image-policy= as given, for the broker. */
        const char *broker;
        bool broker_optional;
        const char *broker_policy;
} RunOptions;

/* Runs the command and returns its exit status (128+N if killed by signal N) in *ret_status, or a
 * negative errno if it could not be started (nothing is left mounted on the host either way). */
int run_command(const RunOptions *o, int *ret_status);
/* --private-users=userns:PATH: open PATH, which must be a user namespace. */
int run_open_userns_path(const char *path, int *ret_fd);

/* Forks a child that runs setup(userdata) and then executes argv; the parent calls release(userdata)
 * (may be NULL) right after the fork, waits for the child passing on signals and returns its exit
 * status in *ret_status (a failed setup or exec: 126, or 127 for a missing command, with the
 * child's message recorded and -EIO or -ENOENT returned). */
typedef int (*RunChildSetup)(void *userdata);
int run_spawn(char **argv, RunChildSetup setup, void (*release)(void *userdata), void *userdata, int *ret_status);

/* Choose a free range of 65536 ids for pick: not mapped by any running user namespace, not in
 * /etc/subuid, no user in it; a lock under the runtime directory is held through *ret_lock_fd. */
int private_users_pick(uint32_t *ret_base, int *ret_lock_fd);
