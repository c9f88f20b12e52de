/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/nsfs.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "dissect.h"
#include "image.h"
#include "mountapi.h"
#include "namespace.h"
#include "run.h"
#include "run-broker.h"

#define PICK_FIRST UINT32_C(0x00080000)         /* as systemd's dynamic container range */
#define PICK_LAST UINT32_C(0x6FFF0000)
#define PICK_SIZE UINT32_C(0x10000)
#define GROUPS_FIRST_GUESS 32                   /* supplementary groups: first buffer, grown as asked */
#define GROUPS_MAX 65536                        /* NGROUPS_MAX of Linux */
#define MAP_LINE_MAX 512                        /* a line of /etc/subuid */
#define PROC_PATH_MAX 300                       /* "/proc/" + a directory entry's name + "/uid_map" */
#define NOTICE_MAX 128
#define CHILD_MESSAGE_MAX 2048                  /* why the command could not be started */
#define EXIT_NOT_FOUND 127                      /* as a shell: no such command */
#define EXIT_CANNOT_EXECUTE 126                 /* as a shell: found, but could not be run */
#define EXIT_SIGNAL_BASE 128                    /* killed by signal N: 128+N */
#define EXIT_UNKNOWN 255

int private_users_parse(const char *s, PrivateUsersSpec *ret) {
        _cleanup_strv_free_ char **w = NULL;
        uint32_t v[3];

        assert(s && ret);
        *ret = (PrivateUsersSpec) { .mode = PRIVATE_USERS_NO };
        if (streq(s, "no"))
                return 0;
        if (streq(s, "pick")) {
                ret->mode = PRIVATE_USERS_PICK;
                return 0;
        }
        if (streq(s, "subuid")) {
                ret->mode = PRIVATE_USERS_SUBUID;
                return 0;
        }
        const char *userns_path = startswith_ptr(s, "userns:");
        if (userns_path) {
                if (!path_is_absolute(userns_path))
                        return sx_error(-EINVAL, "--private-users=: '%s': PATH must be absolute", s);
                ret->userns_path = strdup(userns_path);
                ret->mode = PRIVATE_USERS_USERNS;
                return ret->userns_path ? 0 : -ENOMEM;
        }
        if (strv_split(s, ":", &w) < 0)
                return -ENOMEM;
        if (strv_length(w) != 3 || safe_atou32(w[0], &v[0]) < 0 || safe_atou32(w[1], &v[1]) < 0 ||
            safe_atou32(w[2], &v[2]) < 0 || v[2] == 0 || (uint64_t) v[0] + v[2] > UINT32_MAX ||
            (uint64_t) v[1] + v[2] > UINT32_MAX)
                return sx_error(-EINVAL, "--private-users=: '%s' is not no, pick, subuid, INSIDE:OUTSIDE:COUNT or userns:PATH", s);
        ret->mode = PRIVATE_USERS_MAP;
        ret->map = (IdmapExtent) { .from = v[0], .to = v[1], .count = v[2] };
        return 0;
}

void private_users_done(PrivateUsersSpec *p) {
        free(p->userns_path);
        p->userns_path = NULL;
}

static int parse_mount_options(const char *spec, const char *opts, uint64_t *attrs) {
        _cleanup_strv_free_ char **l = NULL;

        if (strv_split(opts, ",", &l) < 0)
                return -ENOMEM;
        STRV_FOREACH(o, l) {
                if (streq(*o, "ro"))
                        continue;               /* layers are always read-only */
                else if (streq(*o, "nosuid"))
                        *attrs |= MOUNT_ATTR_NOSUID;
                else if (streq(*o, "nodev"))
                        *attrs |= MOUNT_ATTR_NODEV;
                else if (streq(*o, "noexec"))
                        /* overlayfs checks exec against its own mount only: noexec for one layer
                         * would mean noexec for the whole of /usr. Say so instead of doing either. */
                        return sx_error(-EOPNOTSUPP, "--image=%s: noexec cannot be applied to one layer of an overlay", spec);
                else
                        return sx_error(-EINVAL, "--image=%s: unsupported mount option '%s' (ro, nosuid, nodev)", spec, *o);
        }
        return 0;
}

int image_arg_parse(const char *s, ImageArg *ret) {
        _cleanup_strv_free_ char **w = NULL;
        ImageArg a = {};
        size_t n;
        int r;

        assert(s && ret);
        a.optional = s[0] == '-';
        if (strv_split(s + a.optional, ":", &w) < 0)
                return -ENOMEM;
        n = strv_length(w);
        if (n == 0 || n % 2 == 0 || !path_is_absolute(w[0]))
                return sx_error(-EINVAL, "--image=%s: expected [-]PATH[:PARTITION:OPTIONS]... with an absolute PATH", s);
        for (size_t i = 1; i + 1 < n; i += 2) {
                PartitionDesignator d = partition_designator_from_string(w[i]);
                if (d != PARTITION_ROOT && d != PARTITION_USR)
                        return sx_error(-EINVAL, "--image=%s: partition '%s' is not root or usr", s, w[i]);
                r = parse_mount_options(s, w[i + 1], &a.attrs[d]);
                if (r < 0)
                        return r;
        }
        a.path = strdup(w[0]);
        if (!a.path)
                return -ENOMEM;
        *ret = a;
        return 0;
}

void image_arg_done(ImageArg *a) {
        free(a->path);
        a->path = NULL;
}

/* ---- picking a free id range ---- */

static bool range_in_maps(uint32_t base, const char *file) {
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        uint32_t in, out, count;

        while (f && fscanf(f, "%" SCNu32 " %" SCNu32 " %" SCNu32, &in, &out, &count) == 3)
                if (count != UINT32_MAX && (uint64_t) out < (uint64_t) base + PICK_SIZE && (uint64_t) base < (uint64_t) out + count)
                        return true;
        return false;
}

static bool range_used_by_namespaces(uint32_t base) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        bool used = false;

        if (!d)
                return true;
        while (!used && (de = readdir(d))) {
                char p[PROC_PATH_MAX];
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(p, sizeof(p), "/proc/%s/uid_map", de->d_name);
                used = range_in_maps(base, p);
        }
        closedir(d);
        return used;
}

static bool range_in_subid(uint32_t base, const char *file) {
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        char line[MAP_LINE_MAX];

        while (f && fgets(line, sizeof(line), f)) {
                char *c = strchr(line, ':');
                uint32_t start, count;
                if (c && sscanf(c + 1, "%" SCNu32 ":%" SCNu32, &start, &count) == 2 &&
                    (uint64_t) start < (uint64_t) base + PICK_SIZE && (uint64_t) base < (uint64_t) start + count)
                        return true;
        }
        return false;
}

int private_users_pick(uint32_t *ret_base, int *ret_lock_fd) {
        _cleanup_free_ char *dir = strjoin(sx_runtime_dir(), "/private-users");
        int r;

        assert(ret_base && ret_lock_fd);
        if (!dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return sx_error(r, "%s: %m", dir);
        for (uint32_t base = PICK_FIRST; base < PICK_LAST; base += PICK_SIZE) {
                _cleanup_close_ int fd = -EBADF;
                char name[32];

                if (getpwuid(base) || getpwuid(base + PICK_SIZE - 1) || getgrgid(base) ||
                    range_in_subid(base, "/etc/subuid") || range_in_subid(base, "/etc/subgid"))
                        continue;
                snprintf(name, sizeof(name), "/%" PRIu32 ".lock", base);
                _cleanup_free_ char *p = strjoin(dir, name);
                if (!p)
                        return -ENOMEM;
                fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                if (fd < 0)
                        return sx_error(negative_errno(), "%s: %m", p);
                /* The lock says "ours while we run"; the scan catches ranges others use. */
                if (flock(fd, LOCK_EX | LOCK_NB) < 0 || range_used_by_namespaces(base))
                        continue;
                *ret_base = base;
                *ret_lock_fd = TAKE_FD(fd);
                return 0;
        }
        return sx_error(-EBUSY, "--private-users=pick: no free range of %" PRIu32 " ids found", PICK_SIZE);
}

/* ---- the command ---- */

typedef struct RunState {
        Idmap *owned_idmap;
        Idmap *idmap;
        int userns_fd;
        int range_lock;
        uint32_t inside_uid, inside_gid;        /* who the command is inside its namespace */
        struct passwd pw;
        char *user_name;
        gid_t *groups;                  /* --user: its supplementary groups, looked up before any layer is visible */
        int n_groups;
        ImageSource *sources;           /* the images for the merge; path and name owned */
        size_t n_sources;
} RunState;

static void run_state_done(RunState *st) {
        idmap_free(st->owned_idmap);
        safe_close(st->userns_fd);
        safe_close(st->range_lock);
        free(st->user_name);
        free(st->groups);
        for (size_t i = 0; i < st->n_sources; i++) {
                free((char *) st->sources[i].path);
                free((char *) st->sources[i].name);
        }
        free(st->sources);
}

int run_open_userns_path(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return sx_error(negative_errno(), "--private-users=userns:%s: %m", path);
        if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWUSER)
                return sx_error(-EINVAL, "--private-users=userns:%s: not a user namespace", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int setup_user(const RunOptions *o, RunState *st) {
        struct passwd *pw;
        int r;

        if (o->private_users.mode != PRIVATE_USERS_NO)
                return sx_error(-EINVAL, "--user= cannot be combined with --private-users=");
        if (!idmap_is_identity(o->idmap))
                return sx_error(-EINVAL, "--user= cannot be combined with --idmap=; it maps the layers user:NAME");
        errno = 0;
        pw = getpwnam(o->user);
        if (!pw)
                return sx_error(errno > 0 ? -errno : -ESRCH, "--user=%s: no such user", o->user);
        st->pw = *pw;
        st->user_name = strdup(pw->pw_name);
        if (!st->user_name)
                return -ENOMEM;
        st->pw.pw_name = st->user_name;
        /* NSS (and whatever it dlopen()s) runs now, while /usr is still the host's: in the child,
         * after the layers are attached, only plain syscalls change its identity. */
        for (int n = GROUPS_FIRST_GUESS;;) {
                gid_t *g = reallocarray(st->groups, (size_t) n, sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                st->groups = g;
                int k = n;
                if (getgrouplist(st->user_name, st->pw.pw_gid, st->groups, &k) >= 0) {
                        st->n_groups = k;
                        break;
                }
                if (k <= n || k > GROUPS_MAX)
                        return sx_error(-E2BIG, "--user=%s: cannot list its groups", o->user);
                n = k;
        }
        _cleanup_free_ char *spec = strjoin("user:", o->user);
        if (!spec)
                return -ENOMEM;
        r = idmap_parse(spec, &st->owned_idmap);
        if (r < 0)
                return r;
        st->idmap = st->owned_idmap;
        return 0;
}

/* The user namespace of the command and the mapping of every layer into it. */
static int setup_private_users(const RunOptions *o, RunState *st) {
        const PrivateUsersSpec *p = &o->private_users;
        _cleanup_free_ char *spec = NULL;
        IdmapExtent e = p->map;
        int r, fd;

        if (o->user)
                return setup_user(o, st);
        st->idmap = o->idmap;
        if (p->mode == PRIVATE_USERS_NO)
                return 0;
        if (p->mode == PRIVATE_USERS_SUBUID)
                return sx_error(-EOPNOTSUPP, "--private-users=subuid is for ordinary users, whose run goes through the broker");
        if (!idmap_is_identity(o->idmap))
                return sx_error(-EINVAL, "--idmap= applies to --private-users=no only; with a user namespace the layers follow its mapping");
        if (p->mode == PRIVATE_USERS_USERNS) {
                r = run_open_userns_path(p->userns_path, &st->userns_fd);
                spec = strjoin("userns:", p->userns_path);
        } else {
                if (p->mode == PRIVATE_USERS_PICK) {
                        uint32_t base;
                        r = private_users_pick(&base, &st->range_lock);
                        if (r < 0)
                                return r;
                        e = (IdmapExtent) { .from = 0, .to = base, .count = PICK_SIZE };
                        if (o->notice) {
                                char m[NOTICE_MAX];
                                snprintf(m, sizeof(m), "Picked ids %" PRIu32 "…%" PRIu32 " for the command's user namespace (root inside = %" PRIu32 ").",
                                         base, base + PICK_SIZE - 1, base);
                                o->notice(m, o->notice_userdata);
                        }
                }
                r = userns_create(&e, 1, &e, 1, &st->userns_fd);
                if (r >= 0 && asprintf_safe(&spec, "%" PRIu32 ":%" PRIu32 ":%" PRIu32, e.from, e.to, e.count) < 0)
                        r = -ENOMEM;
                st->inside_uid = st->inside_gid = e.from;
        }
        if (r < 0)
                return r;
        if (!spec)
                return -ENOMEM;
        fd = fcntl(st->userns_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        r = idmap_from_userns_fd(fd, spec, &st->owned_idmap);
        if (r < 0)
                return r;
        st->idmap = st->owned_idmap;
        return 0;
}

static int push_image(RunState *st, const char *path, const uint64_t attrs[2], const char *discovered_name) {
        ImageSource *a = reallocarray(st->sources, st->n_sources + 1, sizeof(ImageSource));
        ImageSource src = { .discovered = discovered_name != NULL };

        if (!a)
                return -ENOMEM;
        st->sources = a;
        memcpy(src.attrs, attrs, sizeof(src.attrs));
        src.path = strdup(path);
        if (discovered_name)
                src.name = strdup(discovered_name);
        if (!src.path || (discovered_name && !src.name)) {
                free((char *) src.path);
                free((char *) src.name);
                return -ENOMEM;
        }
        a[st->n_sources++] = src;
        return 0;
}

static int collect_images(const RunOptions *o, RunState *st) {
        static const uint64_t none[2] = {};
        int r;

        for (size_t i = 0; i < o->n_images; i++) {
                if (o->images[i].optional && access(o->images[i].path, F_OK) < 0 && errno == ENOENT) {
                        sx_debug("%s: missing, skipped (optional)", o->images[i].path);
                        continue;
                }
                r = push_image(st, o->images[i].path, o->images[i].attrs, NULL);
                if (r < 0)
                        return r;
        }
        if (o->discover) {
                Image **l = NULL;
                size_t n = 0;
                r = image_discover(NULL, &l, &n);
                if (r < 0)
                        return r;
                for (size_t i = 0; r >= 0 && i < n; i++)
                        if (!l[i]->masked)
                                r = push_image(st, l[i]->path, none, l[i]->name);
                image_array_free(l, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* In the child: a namespace of its own, the overlays, then the command's identity. */
static int child_setup(MergeSession *s, RunState *st) {
        int r;

        /* Host mounts still propagate in; ours never propagate out. */
        r = namespace_new_mount(NAMESPACE_SLAVE);
        if (r < 0)
                return r;
        if (s && merge_session_n_extensions(s) > 0) {
                r = merge_session_apply_here(s);
                if (r < 0)
                        return r;
                /* The overlays are attached: the image mounts would otherwise be dissolved one by
                 * one at execve(). Safe here, in the child: the parent only closes its copies. */
                merge_session_dissolve_mounts(s);
        }
        if (st->userns_fd >= 0) {
                if (sys_setns(st->userns_fd, CLONE_NEWUSER) < 0)
                        return sx_error(negative_errno(), "cannot join the user namespace: %m");
                (void) setgroups(0, NULL);      /* refused where setgroups is denied; nothing to drop then */
                if (setresgid(st->inside_gid, st->inside_gid, st->inside_gid) < 0 ||
                    setresuid(st->inside_uid, st->inside_uid, st->inside_uid) < 0)
                        return sx_error(negative_errno(), "cannot become id %" PRIu32 " in the user namespace: %m",
                                        st->inside_uid);
        }
        if (st->user_name) {
                if (setgroups((size_t) st->n_groups, st->groups) < 0 ||
                    setresgid(st->pw.pw_gid, st->pw.pw_gid, st->pw.pw_gid) < 0 ||
                    setresuid(st->pw.pw_uid, st->pw.pw_uid, st->pw.pw_uid) < 0)
                        return sx_error(negative_errno(), "cannot become user %s: %m", st->pw.pw_name);
        }
        return 0;
}

static const int forwarded_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM };

static _Noreturn void child_main(RunChildSetup setup, void *userdata, char **argv, const sigset_t *old, int err_fd) {
        char msg[CHILD_MESSAGE_MAX];
        int r;

        (void) sigprocmask(SIG_SETMASK, old, NULL);
        r = setup(userdata);
        if (r >= 0) {
                execvp(argv[0], argv);
                r = sx_error(negative_errno(), "%s: cannot execute: %m", argv[0]);
        }
        snprintf(msg, sizeof(msg), "%s", strna(sx_last_error()));
        (void) !write(err_fd, msg, strlen(msg));
        _exit(r == -ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
}

/* Wait for the child, passing on signals sent to us (not those the terminal sent to the whole
 * process group, which the child got already). */
static int forward_and_wait(pid_t pid, const sigset_t *mask) {
        int status = 0;

        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(mask, &si);

                if (sig < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (sig == SIGCHLD) {
                        pid_t w = waitpid(pid, &status, WNOHANG);
                        if (w == pid)
                                break;
                        continue;
                }
                if (si.si_code != SI_KERNEL)
                        (void) kill(pid, sig);
        }
        if (WIFSIGNALED(status))
                return EXIT_SIGNAL_BASE + WTERMSIG(status);
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_UNKNOWN;
}

/* The layers for the command: a merge session over the collected images, loaded on the host side;
 * *ret NULL if there are no images. c is the session's context and must outlive it. */
static int open_session(const RunOptions *o, const RunState *st, MergeContext *c, MergeSession **ret) {
        int r;

        if (st->n_sources == 0) {
                if (o->notice)
                        o->notice("No extension images given or found; running the command without.", o->notice_userdata);
                *ret = NULL;
                return 0;
        }
        *c = (MergeContext) {
                .hierarchies = o->hierarchies,
                .idmap = st->idmap,
                .images = st->sources,
                .n_images = st->n_sources,
                .force = o->force,
                .no_reload = true,
                .policy = o->policy,
                .verity_mode = o->verity_mode,
                .stack = true,
                .untrusted = o->user != NULL,
                /* a wrapper stays quiet about its namespace (no notice); --debug tells */
        };
        r = merge_session_open(c, ret);
        if (r < 0)
                return r;
        r = merge_session_load(*ret);
        if (r < 0)
                merge_session_free(TAKE_PTR(*ret));
        return r;
}

int run_spawn(char **argv, RunChildSetup setup, void (*release)(void *userdata), void *userdata, int *ret_status) {
        char msg[CHILD_MESSAGE_MAX];
        sigset_t mask, old;
        int errpipe[2], r;
        pid_t pid;

        assert(argv && argv[0] && setup && ret_status);
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(forwarded_signals); i++)
                sigaddset(&mask, forwarded_signals[i]);
        sigaddset(&mask, SIGCHLD);
        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return negative_errno();
        (void) sigprocmask(SIG_BLOCK, &mask, &old);
        pid = fork();
        if (pid == 0) {
                safe_close(errpipe[0]);
                child_main(setup, userdata, argv, &old, errpipe[1]);
        }
        safe_close(errpipe[1]);
        if (pid < 0) {
                r = negative_errno();
                safe_close(errpipe[0]);
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }
        if (release)
                release(userdata);
        ssize_t k = read(errpipe[0], msg, sizeof(msg) - 1);
        safe_close(errpipe[0]);
        *ret_status = forward_and_wait(pid, &mask);
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        if (k <= 0)
                return 0;
        msg[k] = 0;
        return sx_error(*ret_status == EXIT_NOT_FOUND ? -ENOENT : -EIO, "%s", msg);
}

typedef struct SpawnState {
        MergeSession **session;
        RunState *st;
} SpawnState;

static int spawn_setup(void *userdata) {
        SpawnState *p = userdata;

        return child_setup(*p->session, p->st);
}

/* Our copies of the layers are not needed any more once the child runs: its overlays hold them. */
static void spawn_release(void *userdata) {
        SpawnState *p = userdata;

        merge_session_free(TAKE_PTR(*p->session));
}

int run_command(const RunOptions *o, int *ret_status) {
        _cleanup_(merge_session_freep) MergeSession *s = NULL;
        RunState st = { .userns_fd = -EBADF, .range_lock = -EBADF };
        MergeContext c;         /* the session keeps a pointer to it: it lives as long as s */
        int r;

        assert(o && o->argv && o->argv[0] && ret_status);
        if (o->broker) {
                r = run_broker_command(o, ret_status);
                if (r != 0)     /* 0: an optional broker is not running, today's path */
                        return r < 0 ? r : 0;
        }
        r = setup_private_users(o, &st);
        if (r >= 0)
                r = collect_images(o, &st);
        if (r >= 0)
                r = open_session(o, &st, &c, &s);
        if (r >= 0)
                r = run_spawn(o->argv, spawn_setup, spawn_release, &(SpawnState) { &s, &st }, ret_status);
        merge_session_free(TAKE_PTR(s));
        run_state_done(&st);
        return r;
}
