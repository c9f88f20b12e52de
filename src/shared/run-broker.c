/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/nsfs.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "broker-client.h"
#include "mountapi.h"
#include "namespace.h"
#include "overlay.h"
#include "run-broker.h"
#include "subid.h"

#define SUBID_RANGE UINT32_C(65536)     /* ids 0..65535 inside with --private-users=subuid */
#define NEWIDMAP_DIR "/usr/bin/"        /* Debian's uidmap package: setuid root, checks /etc/sub[ug]id */
#define PICK_RANGE UINT32_C(0x10000)
#define NOTICE_MAX 512
#define EXIT_NOT_FOUND_NEWIDMAP 127

/* An option the broker path cannot honour (the broker decides how images are verified and mapped),
 * or NULL. */
static const char *broker_unsupported(const RunOptions *o, bool is_root) {
        PrivateUsers m = o->private_users.mode;

        if (o->user)
                return "--user= (the command runs as root of its own user namespace)";
        if (!idmap_is_identity(o->idmap))
                return "--idmap= (the layers follow the command's user namespace)";
        if (o->verity_mode != VERITY_MODE_AUTO)
                return "--verity= (the broker checks images its own way)";
        if (o->force)
                return "--force (the broker checks compatibility)";
        if (!is_root && (m == PRIVATE_USERS_PICK || m == PRIVATE_USERS_MAP))
                return "--private-users=pick or INSIDE:OUTSIDE:COUNT as an ordinary user (use subuid)";
        if (is_root && m == PRIVATE_USERS_SUBUID)
                return "--private-users=subuid as root";
        return NULL;
}

int run_broker_choose(const RunOptions *o, const char *given, bool is_root, const char **ret_socket,
                      bool *ret_optional) {
        const char *why;

        assert(o && ret_socket && ret_optional);
        why = broker_unsupported(o, is_root);
        if (!is_root || given) {
                if (why)
                        return sx_error(-EOPNOTSUPP, "run through the broker: %s is not supported", why);
                *ret_socket = given ?: BROKER_SOCKET_DEFAULT;
                *ret_optional = false;
                return 1;
        }
        if (why || !broker_socket_exists(BROKER_SOCKET_DEFAULT))
                return 0;
        *ret_socket = BROKER_SOCKET_DEFAULT;
        *ret_optional = true;
        return 1;
}

/* ---- the command's user namespace ---- */

/* The user's first range in /etc/subuid or /etc/subgid (subid.h; a file others could change counts
 * as none, as for the broker), at most SUBID_RANGE ids of it. */
static int subid_first(const char *file, uint32_t *ret_start, uint32_t *ret_count) {
        _cleanup_free_ SubidRange *v = NULL;
        _cleanup_free_ char *why = NULL;
        size_t n = 0;
        int r;

        r = subid_load(NULL, file, getuid(), &v, &n, &why);
        if (r < 0)
                return sx_error(r, "--private-users=subuid: /%s: %m", file);
        if (n == 0)
                return sx_error(-ENOENT, "--private-users=subuid: /%s has no range for uid %u%s%s%s", file,
                                (unsigned) getuid(), why ? " (" : "", strempty(why), why ? ")" : "");
        *ret_start = v[0].start;
        *ret_count = v[0].count < SUBID_RANGE ? v[0].count : SUBID_RANGE;
        return 0;
}

/* newuidmap/newgidmap PID 0 START COUNT: setuid helpers that check the range against /etc/sub?id. */
static int run_newidmap(const char *tool, pid_t pid, uint32_t start, uint32_t count) {
        char a[4][16], path[64];
        int status;
        pid_t h;

        snprintf(path, sizeof(path), NEWIDMAP_DIR "%s", tool);
        snprintf(a[0], sizeof(a[0]), "%d", (int) pid);
        snprintf(a[1], sizeof(a[1]), "0");
        snprintf(a[2], sizeof(a[2]), "%" PRIu32, start);
        snprintf(a[3], sizeof(a[3]), "%" PRIu32, count);
        h = fork();
        if (h < 0)
                return negative_errno();
        if (h == 0) {
                execl(path, tool, a[0], a[1], a[2], a[3], (char *) NULL);
                _exit(EXIT_NOT_FOUND_NEWIDMAP);
        }
        if (waitpid(h, &status, 0) < 0)
                return negative_errno();
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_NOT_FOUND_NEWIDMAP)
                return sx_error(-ENOENT, "--private-users=subuid: cannot execute %s (install uidmap)", path);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return sx_error(-EPERM, "--private-users=subuid: %s %s 0 %s %s failed", path, a[0], a[2], a[3]);
        return 0;
}

static int write_proc(pid_t pid, const char *file, const char *text) {
        char p[64];

        snprintf(p, sizeof(p), "/proc/%d/%s", (int) pid, file);
        return write_string_at(AT_FDCWD, p, text, 0);
}

/* Maps for pid's namespace as an ordinary user: own ids -> 0, or the subordinate ranges. */
static int write_user_maps(pid_t pid, bool subuid) {
        char line[64];
        int r;

        if (subuid) {
                uint32_t us, uc, gs, gc;
                if ((r = subid_first("etc/subuid", &us, &uc)) < 0 || (r = subid_first("etc/subgid", &gs, &gc)) < 0)
                        return r;
                r = run_newidmap("newuidmap", pid, us, uc);
                return r < 0 ? r : run_newidmap("newgidmap", pid, gs, gc);
        }
        /* Without CAP_SETGID in the parent namespace a gid_map needs setgroups denied first. */
        r = write_proc(pid, "setgroups", "deny");
        snprintf(line, sizeof(line), "0 %u 1\n", (unsigned) getuid());
        if (r >= 0)
                r = write_proc(pid, "uid_map", line);
        snprintf(line, sizeof(line), "0 %u 1\n", (unsigned) getgid());
        if (r >= 0)
                r = write_proc(pid, "gid_map", line);
        return r < 0 ? sx_error(r, "cannot map our own ids into a new user namespace: %m") : 0;
}

/* A child in a new user namespace waits while we write its maps; we keep a reference to it. */
static int userns_new_unprivileged(bool subuid, int *ret_fd) {
        int pipefd[2], fd = -EBADF, r;
        char p[64];
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) {
                char c;
                safe_close(pipefd[1]);
                (void) !read(pipefd[0], &c, 1);
                _exit(0);
        }
        r = pid < 0 ? sx_error(negative_errno(), "cannot create a user namespace: %m") : 0;
        safe_close(pipefd[0]);
        if (r >= 0)
                r = write_user_maps(pid, subuid);
        snprintf(p, sizeof(p), "/proc/%d/ns/user", (int) pid);
        if (r >= 0 && (fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
                r = negative_errno();
        safe_close(pipefd[1]);
        if (pid > 0)
                (void) waitpid(pid, NULL, 0);
        if (r < 0)
                return r;
        *ret_fd = fd;
        return 0;
}

typedef struct BrokerRun {
        const RunOptions *o;
        int userns_fd;                  /* -EBADF: root with --private-users=no */
        int range_lock;
        uint32_t inside_uid;            /* who the command is in its namespace */
        bool join_first;                /* an ordinary user: the namespace gives the right to mount */
        int *image_fds;
        size_t n_image_fds;
        BrokerClientLayers layers;
} BrokerRun;

static void broker_run_done(BrokerRun *b) {
        safe_close(b->userns_fd);
        safe_close(b->range_lock);
        for (size_t i = 0; i < b->n_image_fds; i++)
                safe_close(b->image_fds[i]);
        free(b->image_fds);
        broker_client_layers_done(&b->layers);
}

/* Root: the forms today's run has, made with the same helpers. */
static int setup_userns_root(BrokerRun *b) {
        const PrivateUsersSpec *p = &b->o->private_users;
        IdmapExtent e = p->map;
        uint32_t base;
        int r;

        switch (p->mode) {
        case PRIVATE_USERS_NO:
                return 0;
        case PRIVATE_USERS_USERNS:
                return run_open_userns_path(p->userns_path, &b->userns_fd);
        case PRIVATE_USERS_PICK:
                r = private_users_pick(&base, &b->range_lock);
                if (r < 0)
                        return r;
                e = (IdmapExtent) { .from = 0, .to = base, .count = PICK_RANGE };
                break;
        default:
                break;
        }
        b->inside_uid = e.from;
        return userns_create(&e, 1, &e, 1, &b->userns_fd);
}

static int setup_userns(BrokerRun *b) {
        PrivateUsers m = b->o->private_users.mode;

        if (geteuid() == 0)
                return setup_userns_root(b);
        b->join_first = true;
        if (m == PRIVATE_USERS_USERNS)
                return run_open_userns_path(b->o->private_users.userns_path, &b->userns_fd);
        return userns_new_unprivileged(m == PRIVATE_USERS_SUBUID, &b->userns_fd);
}

/* The images, opened with the caller's own permissions: the broker gets what the caller can read. */
static int open_images(BrokerRun *b) {
        const RunOptions *o = b->o;

        b->image_fds = calloc(o->n_images + 1, sizeof(int));
        if (!b->image_fds)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_images; i++) {
                int fd = open(o->images[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (fd < 0 && errno == ENOENT && o->images[i].optional)
                        continue;
                if (fd < 0)
                        return sx_error(negative_errno(), "%s: cannot open: %m", o->images[i].path);
                b->image_fds[b->n_image_fds++] = fd;
        }
        return 0;
}

_printf_(2, 3) static void notice(const RunOptions *o, const char *fmt, ...) {
        char m[NOTICE_MAX];
        va_list ap;

        if (!o->notice)
                return;
        va_start(ap, fmt);
        vsnprintf(m, sizeof(m), fmt, ap);
        va_end(ap);
        o->notice(m, o->notice_userdata);
}

/* Can the command's overlays be built from layer fds here (Linux 6.7+)? Asked where they will be
 * built: an ordinary user may open an overlayfs context only in a mount namespace of its own user
 * namespace, so a child joins it and makes one. 1 yes, 0 no. */
static int fd_layers_supported(const BrokerRun *b) {
        int status, r;
        pid_t pid;

        if (!b->join_first)
                return overlay_fd_layers_supported();
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                r = sys_setns(b->userns_fd, CLONE_NEWUSER) < 0 ? negative_errno() : namespace_new_mount(NAMESPACE_PRIVATE);
                if (r >= 0)
                        r = overlay_fd_layers_supported();
                _exit(r < 0 ? 2 : r);
        }
        if (waitpid(pid, &status, 0) < 0)
                return negative_errno();
        if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
                return sx_error(-EIO, "cannot find out whether overlayfs takes layer file descriptors here");
        return WEXITSTATUS(status);
}

/* The given images on top, the host's trusted ones (--discover) below them. Where overlayfs takes
 * no layer fds (before Linux 6.7) the broker's finished overlay is used instead: one call only. */
static int get_layers(BrokerRun *b) {
        const RunOptions *o = b->o;
        bool want_overlay;
        int r;

        if (b->n_image_fds == 0 && !o->discover) {
                notice(o, "No extension images given or found; running the command without.");
                return 1;
        }
        r = fd_layers_supported(b);
        if (r < 0)
                return r;
        want_overlay = r == 0;
        if (want_overlay && b->n_image_fds > 0 && o->discover)
                return sx_error(-EOPNOTSUPP, "run through the broker: --image= with --discover needs overlayfs "
                                "with layer file descriptors (Linux 6.7 or newer)");
        if (b->n_image_fds > 0) {
                r = broker_client_mount_overlay(o->broker, b->image_fds, b->n_image_fds, b->userns_fd,
                                                o->hierarchies, o->broker_policy, want_overlay, &b->layers);
                if (r < 0)
                        return r;
        }
        if (o->discover) {
                r = broker_client_mount_overlay(o->broker, NULL, 0, b->userns_fd, o->hierarchies,
                                                o->broker_policy, want_overlay, &b->layers);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; b->layers.skipped && b->layers.skipped[i]; i++)
                notice(o, "%s: skipped by the broker: %s", b->layers.skipped[i], b->layers.skipped_reason[i]);
        for (size_t i = 0; b->layers.extensions && b->layers.extensions[i]; i++)
                sx_debug("%s: layer from the broker (%s)", b->layers.extensions[i], b->layers.trust[i]);
        return 1;
}

static int become_inside(const BrokerRun *b) {
        if (b->userns_fd < 0)
                return 0;
        if (!b->join_first && sys_setns(b->userns_fd, CLONE_NEWUSER) < 0)
                return sx_error(negative_errno(), "cannot join the user namespace: %m");
        (void) setgroups(0, NULL);      /* refused where setgroups is denied: nothing to drop then */
        if (setresgid(b->inside_uid, b->inside_uid, b->inside_uid) < 0 ||
            setresuid(b->inside_uid, b->inside_uid, b->inside_uid) < 0)
                return sx_error(negative_errno(), "cannot become id %" PRIu32 " in the user namespace: %m", b->inside_uid);
        return 0;
}

/* In the child: an ordinary user joins its namespace first (it owns it, so it may mount in a mount
 * namespace the new namespace owns); root makes the mount namespace first, as today's run. */
static int broker_child_setup(void *userdata) {
        BrokerRun *b = userdata;
        _cleanup_strv_free_ char **missing = NULL;
        int r;

        if (b->join_first && sys_setns(b->userns_fd, CLONE_NEWUSER) < 0)
                return sx_error(negative_errno(), "cannot join the command's user namespace: %m");
        r = namespace_new_mount(NAMESPACE_SLAVE);
        if (r < 0)
                return r;
        r = broker_client_layers_attach(&b->layers, &missing);
        if (r < 0)
                return r;
        STRV_FOREACH(m, missing)
                notice(b->o, "%s: not present here, its layers are left out", *m);
        return become_inside(b);
}

static void broker_release(void *userdata) {
        BrokerRun *b = userdata;

        broker_client_layers_done(&b->layers);
}

int run_broker_command(const RunOptions *o, int *ret_status) {
        BrokerRun b = { .o = o, .userns_fd = -EBADF, .range_lock = -EBADF };
        int r;

        assert(o && o->broker && o->argv && o->argv[0] && ret_status);
        if (o->broker_optional && !broker_socket_exists(o->broker))
                return 0;
        r = open_images(&b);
        if (r >= 0)
                r = setup_userns(&b);
        if (r >= 0)
                r = get_layers(&b);
        if (r == -ENOTCONN && o->broker_optional) {
                sx_debug("%s", strna(sx_last_error()));
                broker_run_done(&b);
                return 0;
        }
        if (r >= 0)
                r = run_spawn(o->argv, broker_child_setup, broker_release, &b, ret_status);
        broker_run_done(&b);
        return r < 0 ? r : 1;
}
