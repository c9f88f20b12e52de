/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <inttypes.h>
#include <linux/nsfs.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "idmap.h"
#include "mountapi.h"

/* One uid_map line: three numbers of at most 10 digits, two blanks and a newline. */
#define MAP_LINE_MAX (3 * 10 + 3)
/* A whole map as /proc prints it (every line MAP_LINE_MAX wide) and its NUL. */
#define MAP_TEXT_MAX (IDMAP_EXTENTS_MAX * MAP_LINE_MAX + 1)

int idmap_parse_number(const char *s, uint32_t *ret) {
        uint64_t v = 0;

        if (isempty(s))
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (*p - '0');
                if (v > UINT32_MAX)
                        return -ERANGE;
        }
        *ret = (uint32_t) v;
        return 0;
}

Idmap *idmap_free(Idmap *m) {
        if (!m)
                return NULL;
        free(m->spec);
        free(m->userns_path);
        safe_close(m->userns_fd);
        free(m);
        return NULL;
}

static Idmap *idmap_new(IdmapKind kind) {
        Idmap *m = calloc(1, sizeof(Idmap));

        if (!m)
                return NULL;
        m->kind = kind;
        m->userns_fd = -EBADF;
        return m;
}

static bool ranges_overlap(uint32_t a, uint32_t al, uint32_t b, uint32_t bl) {
        return (uint64_t) a < (uint64_t) b + bl && (uint64_t) b < (uint64_t) a + al;
}

/* The kernel refuses maps whose inside or outside ranges overlap; say so before it does. */
static int extents_add(IdmapExtent *v, size_t *n, IdmapExtent e, const char *entry) {
        if (*n >= IDMAP_EXTENTS_MAX)
                return sx_error(-E2BIG, "--idmap: too many entries (at most %d per id type)", IDMAP_EXTENTS_MAX);
        for (size_t i = 0; i < *n; i++)
                if (ranges_overlap(v[i].from, v[i].count, e.from, e.count) ||
                    ranges_overlap(v[i].to, v[i].count, e.to, e.count))
                        return sx_error(-EINVAL, "--idmap: entry '%s' overlaps an earlier entry", entry);
        v[(*n)++] = e;
        return 0;
}

static int parse_extent(const char *entry, char *type, IdmapExtent *ret) {
        _cleanup_strv_free_ char **w = NULL;
        uint32_t v[3];

        /* Keep empty fields so "b::1:1" is refused instead of silently shifted. */
        size_t n = 1;
        for (const char *p = entry; *p; p++)
                n += *p == ':';
        if (n != 4 || strv_split(entry, ":", &w) < 0 || strv_length(w) != 4 || strlen(w[0]) != 1 ||
            !strchr("bug", w[0][0]))
                return sx_error(-EINVAL, "--idmap: '%s' is not of the form b|u|g:FROM:TO:COUNT", entry);
        for (size_t i = 0; i < 3; i++) {
                int r = idmap_parse_number(w[i + 1], &v[i]);
                if (r == -ERANGE)
                        return sx_error(r, "--idmap: '%s': '%s' is out of range (ids end at %" PRIu32 ")", entry,
                                        w[i + 1], IDMAP_ID_MAX);
                if (r < 0)
                        return sx_error(r, "--idmap: '%s': '%s' is not a decimal number", entry, w[i + 1]);
        }
        if (v[2] == 0)
                return sx_error(-EINVAL, "--idmap: '%s': COUNT must be at least 1", entry);
        if ((uint64_t) v[0] + v[2] - 1 > IDMAP_ID_MAX || (uint64_t) v[1] + v[2] - 1 > IDMAP_ID_MAX)
                return sx_error(-ERANGE, "--idmap: '%s': range reaches beyond id %" PRIu32, entry, IDMAP_ID_MAX);
        *type = w[0][0];
        *ret = (IdmapExtent) { .from = v[0], .to = v[1], .count = v[2] };
        return 0;
}

static int idmap_add(Idmap *m, char type, IdmapExtent e, const char *entry) {
        int r;

        if (type == 'b' || type == 'u') {
                r = extents_add(m->uid, &m->n_uid, e, entry);
                if (r < 0)
                        return r;
        }
        if (type == 'b' || type == 'g')
                return extents_add(m->gid, &m->n_gid, e, entry);
        return 0;
}

static int parse_user(Idmap *m, const char *name) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(name);
        if (!pw)
                return sx_error(errno > 0 ? -errno : -ESRCH, "--idmap: user '%s' not found", name);
        if (pw->pw_uid == 0 || pw->pw_gid == 0)
                return sx_error(-EPERM, "--idmap: user '%s' is root; user: maps images to ordinary users only", name);
        m->untrusted = true;
        /* systemd-homed's convention: on-disk nobody is the user; nothing else is mapped. */
        return idmap_add(m, 'u', (IdmapExtent) { IDMAP_NOBODY_ID, pw->pw_uid, 1 }, name) ?:
               idmap_add(m, 'g', (IdmapExtent) { IDMAP_NOBODY_ID, pw->pw_gid, 1 }, name);
}

static int parse_userns_entry(Idmap *m, const char *entry) {
        const char *v;

        if ((v = startswith_ptr(entry, "userns:"))) {
                if (!path_is_absolute(v))
                        return sx_error(-EINVAL, "--idmap: '%s': PATH must be absolute", entry);
                m->userns_path = strdup(v);
        } else if ((v = startswith_ptr(entry, "pid:"))) {
                uint32_t pid;
                if (idmap_parse_number(v, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                        return sx_error(-EINVAL, "--idmap: '%s': '%s' is not a PID (a decimal number)", entry, v);
                m->pid = (pid_t) pid;
                if (asprintf_safe(&m->userns_path, "/proc/%" PRIu32 "/ns/user", pid) < 0)
                        return -ENOMEM;
        }
        if (!m->userns_path)
                return -ENOMEM;
        m->kind = IDMAP_USERNS;
        return 0;
}

int idmap_parse(const char *spec, Idmap **ret) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        _cleanup_strv_free_ char **entries = NULL;
        int r;

        m = idmap_new(IDMAP_IDENTITY);
        if (!m)
                return -ENOMEM;
        if (isempty(spec) || streq(spec, "identity")) {
                m->spec = strdup("identity");
                if (!m->spec)
                        return -ENOMEM;
                *ret = TAKE_PTR(m);
                return 0;
        }
        /* Entries are quoted in messages: no terminal escapes, no broken UTF-8. */
        if (string_has_cc(spec))
                return sx_error(-EINVAL, "--idmap: specification contains control characters");
        if (!utf8_is_valid(spec))
                return sx_error(-EINVAL, "--idmap: specification is not valid UTF-8");
        if (spec[0] == ',' || endswith(spec, ",") || strstr(spec, ",,"))
                return sx_error(-EINVAL, "--idmap: '%s' has an empty entry", spec);
        if (strv_split(spec, ",", &entries) < 0)
                return -ENOMEM;

        STRV_FOREACH(e, entries) {
                /* user: promises that nothing can appear root-owned; another entry could break that. */
                bool alone = streq(*e, "identity") || streq(*e, "auto") || startswith(*e, "userns:") || startswith(*e, "pid:") ||
                             startswith(*e, "user:");

                if (alone && strv_length(entries) > 1)
                        return sx_error(-EINVAL, "--idmap: '%s' cannot be combined with other entries", *e);
                if (streq(*e, "identity"))
                        continue;
                if (streq(*e, "auto")) {
                        m->kind = IDMAP_AUTO;
                        continue;
                }
                if (startswith(*e, "userns:") || startswith(*e, "pid:"))
                        r = parse_userns_entry(m, *e);
                else if (streq(*e, "foreign"))
                        r = idmap_add(m, 'b', (IdmapExtent) { FOREIGN_UID_BASE, 0, FOREIGN_UID_RANGE }, *e);
                else if (startswith(*e, "user:"))
                        r = parse_user(m, *e + STRLEN("user:"));
                else {
                        IdmapExtent x;
                        char type = 0;
                        r = parse_extent(*e, &type, &x);
                        if (r >= 0)
                                r = idmap_add(m, type, x, *e);
                }
                if (r < 0)
                        return r;
                if (m->kind == IDMAP_IDENTITY)
                        m->kind = IDMAP_MAP;
        }
        if (m->kind == IDMAP_MAP && (m->n_uid == 0 || m->n_gid == 0))
                /* A namespace without a gid (or uid) map cannot be attached to a mount. */
                return sx_error(-EINVAL, "--idmap: '%s' maps no %s; add a 'b:' or '%c:' entry", spec,
                                m->n_uid == 0 ? "uids" : "gids", m->n_uid == 0 ? 'u' : 'g');
        m->spec = strdup(spec);
        if (!m->spec)
                return -ENOMEM;
        *ret = TAKE_PTR(m);
        return 0;
}

int idmap_from_userns_fd(int fd, const char *spec, Idmap **ret) {
        Idmap *m = idmap_new(IDMAP_USERNS);

        if (!m || !(m->spec = strdup(spec))) {
                idmap_free(m);
                safe_close(fd);
                return -ENOMEM;
        }
        m->userns_fd = fd;
        *ret = m;
        return 0;
}

static int format_extents(const IdmapExtent *v, size_t n, char type, char **spec) {
        for (size_t i = 0; i < n; i++) {
                char *j;
                if (asprintf_safe(&j, "%s%s%c:%" PRIu32 ":%" PRIu32 ":%" PRIu32, strempty(*spec),
                                  isempty(*spec) ? "" : ",", type, v[i].from, v[i].to, v[i].count) < 0)
                        return -ENOMEM;
                free(*spec);
                *spec = j;
        }
        return 0;
}

int idmap_from_extents(const IdmapExtent *uid, size_t n_uid, const IdmapExtent *gid, size_t n_gid, Idmap **ret) {
        _cleanup_(idmap_freep) Idmap *m = NULL;
        int r;

        if (n_uid == 0 || n_gid == 0 || n_uid > IDMAP_EXTENTS_MAX || n_gid > IDMAP_EXTENTS_MAX)
                return -EINVAL;
        m = idmap_new(IDMAP_MAP);
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < n_uid; i++)
                if ((r = idmap_add(m, 'u', uid[i], "uid map")) < 0)
                        return r;
        for (size_t i = 0; i < n_gid; i++)
                if ((r = idmap_add(m, 'g', gid[i], "gid map")) < 0)
                        return r;
        if (format_extents(m->uid, m->n_uid, 'u', &m->spec) < 0 ||
            format_extents(m->gid, m->n_gid, 'g', &m->spec) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(m);
        return 0;
}

static bool extents_equal(const IdmapExtent *a, size_t na, const IdmapExtent *b, size_t nb) {
        return na == nb && (na == 0 || memcmp(a, b, na * sizeof(IdmapExtent)) == 0);
}

bool idmap_equal(const Idmap *a, const Idmap *b) {
        IdmapKind ka = a ? a->kind : IDMAP_IDENTITY, kb = b ? b->kind : IDMAP_IDENTITY;

        if (ka != kb)
                return false;
        if (ka == IDMAP_MAP)
                return a->untrusted == b->untrusted && extents_equal(a->uid, a->n_uid, b->uid, b->n_uid) &&
                       extents_equal(a->gid, a->n_gid, b->gid, b->n_gid);
        if (ka == IDMAP_USERNS)
                return streq(a->userns_path ?: "", b->userns_path ?: "") && a->pid == b->pid &&
                       a->userns_fd == b->userns_fd;
        return true;
}

static uint32_t map_id(const IdmapExtent *v, size_t n, uint32_t id) {
        for (size_t i = 0; i < n; i++)
                if (id >= v[i].from && (uint64_t) id < (uint64_t) v[i].from + v[i].count)
                        return v[i].to + (id - v[i].from);
        return UINT32_MAX;
}

uint32_t idmap_map_uid(const Idmap *m, uint32_t on_disk) {
        return idmap_is_identity(m) ? on_disk : map_id(m->uid, m->n_uid, on_disk);
}

uint32_t idmap_map_gid(const Idmap *m, uint32_t on_disk) {
        return idmap_is_identity(m) ? on_disk : map_id(m->gid, m->n_gid, on_disk);
}

static int write_map(pid_t pid, const char *file, const IdmapExtent *v, size_t n) {
        _cleanup_free_ char *buf = NULL, *path = NULL;
        size_t l = 0;

        buf = malloc(n * MAP_LINE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                l += (size_t) sprintf(buf + l, "%" PRIu32 " %" PRIu32 " %" PRIu32 "\n", v[i].from, v[i].to, v[i].count);
        if (asprintf_safe(&path, "/proc/%d/%s", (int) pid, file) < 0)
                return -ENOMEM;
        return write_string_at(AT_FDCWD, path, buf, 0);
}

/* A child in a new user namespace that waits until we close the pipe; we write its maps and keep a
 * reference to the namespace. Raw clone() so the child needs no second synchronisation step. */
int userns_create(const IdmapExtent *uid, size_t n_uid, const IdmapExtent *gid, size_t n_gid, int *ret_fd) {
        _cleanup_close_ int ns = -EBADF;
        _cleanup_free_ char *path = NULL;
        int pipefd[2], r;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = (pid_t) syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0) {
                r = negative_errno();
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return sx_error(r, "failed to create a user namespace: %m");
        }
        if (pid == 0) {
                char c;
                safe_close(pipefd[1]);
                (void) read(pipefd[0], &c, 1);
                _exit(0);
        }
        safe_close(pipefd[0]);
        r = write_map(pid, "uid_map", uid, n_uid);
        if (r >= 0)
                r = write_map(pid, "gid_map", gid, n_gid);
        if (r >= 0 && asprintf_safe(&path, "/proc/%d/ns/user", (int) pid) >= 0) {
                ns = open(path, O_RDONLY | O_CLOEXEC);
                if (ns < 0)
                        r = negative_errno();
        }
        safe_close(pipefd[1]);
        (void) waitpid(pid, NULL, 0);
        if (r < 0)
                return sx_error(r, "failed to set up the id mapping of a user namespace: %m");
        if (ns < 0)
                return -ENOMEM;
        *ret_fd = TAKE_FD(ns);
        return 0;
}

static int open_userns(Idmap *m, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF, pidfd = -EBADF;
        struct stat a, b;

        if (m->pid > 0) {
                /* Pin the process so the namespace we open is the one of that very PID. */
                pidfd = sys_pidfd_open(m->pid, 0);
                if (pidfd < 0)
                        return sx_error(negative_errno(), "--idmap: process %d: %m", (int) m->pid);
        }
        fd = open(m->userns_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return sx_error(negative_errno(), "--idmap: %s: %m", m->userns_path);
        if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
                return sx_error(-ESRCH, "--idmap: process %d went away", (int) m->pid);
        if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWUSER)
                return sx_error(-EINVAL, "--idmap: %s is not a user namespace", m->userns_path);
        if (fstat(fd, &a) < 0 || stat("/proc/self/ns/user", &b) < 0)
                return negative_errno();
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                return sx_error(-EINVAL, "--idmap: %s is our own user namespace; use 'identity'", m->userns_path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int idmap_userns_fd(Idmap *m) {
        int r, fd = -EBADF;

        if (idmap_is_identity(m))
                return -EBADF;
        if (idmap_is_auto(m))
                return -EINVAL;
        if (m->userns_fd >= 0)
                return m->userns_fd;
        if (m->kind == IDMAP_USERNS)
                r = open_userns(m, &fd);
        else
                r = userns_create(m->uid, m->n_uid, m->gid, m->n_gid, &fd);
        if (r < 0)
                return r;
        m->userns_fd = fd;
        return fd;
}

static int parse_map_text(const char *text, IdmapExtent *v, size_t *n) {
        const char *p = text;

        *n = 0;
        while (*p && *n < IDMAP_EXTENTS_MAX) {
                IdmapExtent e;
                int consumed = 0;
                if (sscanf(p, " %" SCNu32 " %" SCNu32 " %" SCNu32 "%n", &e.from, &e.to, &e.count, &consumed) != 3)
                        break;
                v[(*n)++] = e;
                p += consumed;
        }
        return *n > 0 ? 0 : -ENODATA;
}

/* Join the namespace in a child and read its maps from /proc/self: seen from inside, the second
 * column is relative to the namespace's parent, i.e. the host ids for a child of ours. */
int userns_read_maps(int userns_fd, Idmap **ret) {
        _cleanup_free_ IdmapExtent *uid = NULL, *gid = NULL;
        char buf[2][MAP_TEXT_MAX] = {};
        int pipefd[2];
        size_t nu, ng;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return negative_errno();
        }
        if (pid == 0) {
                safe_close(pipefd[0]);
                if (sys_setns(userns_fd, CLONE_NEWUSER) < 0)
                        _exit(1);
                for (int i = 0; i < 2; i++) {
                        _cleanup_free_ char *t = NULL;
                        if (read_full_file_at(AT_FDCWD, i == 0 ? "/proc/self/uid_map" : "/proc/self/gid_map",
                                              sizeof(buf[0]) - 1, &t, NULL) < 0)
                                _exit(1);
                        strncpy(buf[i], t, sizeof(buf[i]) - 1);
                }
                if (write(pipefd[1], buf, sizeof(buf)) != (ssize_t) sizeof(buf))
                        _exit(1);
                _exit(0);
        }
        safe_close(pipefd[1]);
        /* More than PIPE_BUF bytes: a read may return part of them. */
        size_t got = 0;
        while (got < sizeof(buf)) {
                ssize_t k = read(pipefd[0], (char *) buf + got, sizeof(buf) - got);
                if (k <= 0)
                        break;
                got += (size_t) k;
        }
        safe_close(pipefd[0]);
        (void) waitpid(pid, NULL, 0);
        if (got != sizeof(buf))
                return -EIO;
        buf[0][sizeof(buf[0]) - 1] = buf[1][sizeof(buf[1]) - 1] = 0;
        uid = calloc(IDMAP_EXTENTS_MAX, sizeof(IdmapExtent));
        gid = calloc(IDMAP_EXTENTS_MAX, sizeof(IdmapExtent));
        if (!uid || !gid)
                return -ENOMEM;
        if (parse_map_text(buf[0], uid, &nu) < 0 || parse_map_text(buf[1], gid, &ng) < 0)
                return -ENODATA;
        return idmap_from_extents(uid, nu, gid, ng, ret);
}
