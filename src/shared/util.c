/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <ctype.h>
#include <strings.h>
#include <limits.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <time.h>

#include "mountapi.h"
#include "util.h"

static __thread char error_buf[4096];
static __thread int error_code;     /* the errno error_buf was recorded for */
bool sx_debug_enabled = false;

/* Copy src into dst (size bytes); if it does not fit, keep its beginning and its end, joined by
 * "...": the end says what failed, which a long path in front must not cut off. */
void copy_message(char *dst, size_t size, const char *src) {
        size_t n = strlen(src), head = size / 4, tail;

        if (n < size) {
                memcpy(dst, src, n + 1);
                return;
        }
        tail = size - head - sizeof("...");
        /* Cut between characters, not inside a UTF-8 sequence (found by fuzz-idmap). */
        while (head > 0 && ((unsigned char) src[head] & 0xC0) == 0x80)
                head--;
        while (tail > 0 && ((unsigned char) src[n - tail] & 0xC0) == 0x80)
                tail--;
        memcpy(dst, src, head);
        memcpy(dst + head, "...", 3);
        memcpy(dst + head + 3, src + n - tail, tail + 1);
}

static void record_message(int r, char *m) {
        copy_message(error_buf, sizeof(error_buf), m ?: "out of memory");
        error_code = r;
        free(m);
        sx_debug("error: %s (%s)", error_buf, strerror(r < 0 ? -r : r));
}

static int record_formatted(int r, const char *fmt, va_list ap) {
        char *m = NULL;

        assert(r < 0);
        /* Formatted apart, so a message may also contain the previous one; %m is strerror(-r). */
        errno = -r;
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        record_message(r, m);
        return r;
}

int sx_error(int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        r = record_formatted(r, fmt, ap);
        va_end(ap);
        return r;
}

int sx_error_prefix(int r, const char *fmt, ...) {
        _cleanup_free_ char *context = NULL;
        char *m = NULL;
        va_list ap;

        assert(r < 0);
        errno = -r;
        va_start(ap, fmt);
        if (vasprintf(&context, fmt, ap) < 0)
                context = NULL;
        va_end(ap);
        if (context && asprintf(&m, "%s: %s", context, error_buf[0] && error_code == r ? error_buf : strerror(-r)) < 0)
                m = NULL;
        record_message(r, m);
        return r;
}

int sx_error_fallback(int r, const char *fmt, ...) {
        va_list ap;

        assert(r < 0);
        if (error_buf[0] && error_code == r)
                return r;
        va_start(ap, fmt);
        r = record_formatted(r, fmt, ap);
        va_end(ap);
        return r;
}

const char *sx_last_error(void) {
        return error_buf[0] ? error_buf : NULL;
}

void sx_clear_error(void) {
        error_buf[0] = 0;
        error_code = 0;
}

void sx_debug(const char *fmt, ...) {
        va_list ap;
        int saved = errno;

        if (!sx_debug_enabled)
                return;
        va_start(ap, fmt);
        fputs("sysext-idmap: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        errno = saved;
}

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char * const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int strv_push(char ***l, char *value) {
        size_t n = strv_length(*l);
        char **c;

        if (!value)
                return -EINVAL;
        c = reallocarray(*l, n + 2, sizeof(char *));
        if (!c) {
                free(value);
                return -ENOMEM;
        }
        c[n] = value;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int strv_extend(char ***l, const char *value) {
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        return strv_push(l, v);
}

bool strv_contains(char * const *l, const char *s) {
        STRV_FOREACH(i, l)
                if (streq(*i, s))
                        return true;
        return false;
}

int strv_split(const char *s, const char *separators, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        const char *p = s;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        while (*p) {
                size_t n = strcspn(p, separators);
                if (n > 0) {
                        char *w = strndup(p, n);
                        if (!w || strv_push(&l, w) < 0)
                                return -ENOMEM;
                }
                p += n;
                if (*p)
                        p++;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

char *strv_join(char * const *l, const char *separator) {
        size_t k = 0, sl = strlen(separator);
        char *r, *e;

        STRV_FOREACH(i, l)
                k += strlen(*i) + sl;
        r = malloc(k + 1);
        if (!r)
                return NULL;
        e = r;
        STRV_FOREACH(i, l) {
                if (i != l)
                        e = stpcpy(e, separator);
                e = stpcpy(e, *i);
        }
        *e = 0;
        return r;
}

char *strjoin_real(const char *a, ...) {
        va_list ap;
        size_t l = 0;
        char *r, *p;

        va_start(ap, a);
        for (const char *s = a; s; s = va_arg(ap, const char *))
                l += strlen(s);
        va_end(ap);
        r = malloc(l + 1);
        if (!r)
                return NULL;
        p = r;
        va_start(ap, a);
        for (const char *s = a; s; s = va_arg(ap, const char *))
                p = stpcpy(p, s);
        va_end(ap);
        *p = 0;
        return r;
}

int asprintf_safe(char **ret, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(ret, fmt, ap);
        va_end(ap);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return r;
}

bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *startswith_ptr(const char *s, const char *prefix) {
        size_t l = strlen(prefix);

        return strncmp(s, prefix, l) == 0 ? s + l : NULL;
}

bool endswith(const char *s, const char *suffix) {
        size_t sl = strlen(s), xl = strlen(suffix);

        return sl >= xl && memcmp(s + sl - xl, suffix, xl) == 0;
}

bool string_has_cc(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < ' ' || *p == 127)
                        return true;
        return false;
}

bool utf8_is_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                unsigned n;
                uint32_t cp;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if ((*p & 0xE0) == 0xC0) {
                        n = 1;
                        cp = *p & 0x1F;
                } else if ((*p & 0xF0) == 0xE0) {
                        n = 2;
                        cp = *p & 0x0F;
                } else if ((*p & 0xF8) == 0xF0) {
                        n = 3;
                        cp = *p & 0x07;
                } else
                        return false;
                p++;
                for (unsigned i = 0; i < n; i++, p++) {
                        if ((*p & 0xC0) != 0x80)
                                return false;
                        cp = (cp << 6) | (*p & 0x3F);
                }
                /* overlong forms, surrogates, out of range */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
                        return false;
        }
        return true;
}

char *cescape(const char *s) {
        bool valid = utf8_is_valid(s);
        char *r = malloc(strlen(s) * 4 + 1), *w = r;

        if (!r)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p < ' ' || *p == 127 || (!valid && *p >= 0x80))
                        w += sprintf(w, "\\x%02x", *p);
                else
                        *w++ = (char) *p;
        }
        *w = 0;
        return r;
}

bool path_is_absolute(const char *p) {
        return p && p[0] == '/';
}

bool path_is_safe_component(const char *name) {
        return !isempty(name) && !streq(name, ".") && !streq(name, "..") && !strchr(name, '/');
}

char *path_join_root(const char *root, const char *path) {
        _cleanup_free_ char *j = NULL;
        char *w, *r;

        if (isempty(root) || streq(root, "/"))
                j = strjoin("/", path);
        else
                j = strjoin(root, "/", path);
        if (!j)
                return NULL;
        /* fold duplicate slashes, drop a trailing one (but keep "/") */
        for (r = w = j; *r; r++) {
                if (*r == '/' && w > j && w[-1] == '/')
                        continue;
                *w++ = *r;
        }
        if (w > j + 1 && w[-1] == '/')
                w--;
        *w = 0;
        return TAKE_PTR(j);
}

/* Userspace fallback for kernels (or valgrind) without openat2(): walk the path one component at a
 * time with O_PATH|O_NOFOLLOW, expanding symlinks ourselves. in_root: absolute symlinks and ".." at the
 * top stay at dirfd (RESOLVE_IN_ROOT); otherwise they fail with -EXDEV (RESOLVE_BENEATH). Mount points
 * are crossed and magic links are not detected, so this is weaker than openat2(); it only runs when the
 * kernel lacks openat2. */
static int reopen_fd(int fd, int flags) {
        char proc[64];
        int r;

        /* Reopen what we resolved through /proc; the name is never looked up again. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        r = open(proc, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
        return r < 0 ? negative_errno() : r;
}

static int open_root_dup(int dirfd) {
        int fd = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

        return fd < 0 ? negative_errno() : fd;
}

#define SYMLINKS_MAX 40  /* links followed in one lookup, as the kernel's MAXSYMLINKS */

/* The state of one fallback walk: the root it must stay beneath, where it is, what is left. */
typedef struct Walk {
        int dirfd;
        struct stat root_st;
        bool in_root;
        int cur;                /* O_PATH fd of the directory reached so far */
        char *todo, *p;         /* the path left to walk is p, which points into todo */
        unsigned links;
} Walk;

static void walk_done(Walk *w) {
        w->cur = safe_close(w->cur);
        free(w->todo);
}

/* Open comp in w->cur: "..", which at the root fails with -EXDEV unless in_root, where it stays at
 * the top (*ret_stay, returns -EBADF); or any other name, not followed if a symlink. */
static int walk_open(Walk *w, const char *comp, bool *ret_stay) {
        struct stat st;
        int fd;

        *ret_stay = false;
        if (!streq(comp, "..")) {
                fd = openat(w->cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                return fd < 0 ? negative_errno() : fd;
        }
        if (fstat(w->cur, &st) < 0)
                return negative_errno();
        if (st.st_dev == w->root_st.st_dev && st.st_ino == w->root_st.st_ino) {
                *ret_stay = w->in_root;
                return w->in_root ? -EBADF : -EXDEV;
        }
        fd = openat(w->cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

/* Continue the walk with the target of the symlink link_fd followed by what is left of the path. */
static int walk_symlink(Walk *w, int link_fd) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(link_fd, "", target, sizeof(target) - 1);
        char *j;

        if (n < 0)
                return negative_errno();
        if (++w->links > SYMLINKS_MAX)
                return -ELOOP;
        target[n] = 0;
        if (target[0] == '/') {
                if (!w->in_root)
                        return -EXDEV;
                safe_close(w->cur);
                w->cur = open_root_dup(w->dirfd);
                if (w->cur < 0)
                        return w->cur;
        }
        j = strjoin(target, "/", w->p);
        if (!j)
                return -ENOMEM;
        free(w->todo);
        w->todo = w->p = j;
        return 0;
}

/* Take the next component off w->p; NULL at the end of the path. */
static char *walk_next_component(Walk *w, bool *ret_last) {
        char *comp;

        w->p += strspn(w->p, "/");
        if (!*w->p)
                return NULL;
        comp = w->p;
        w->p += strcspn(w->p, "/");
        *ret_last = w->p[strspn(w->p, "/")] == 0;
        if (*w->p)
                *w->p++ = 0;
        return comp;
}

static int openat_beneath_fallback(int dirfd, const char *path, int flags, bool in_root) {
        _cleanup_(walk_done) Walk w = { .dirfd = dirfd, .in_root = in_root, .cur = -EBADF };
        char *comp;
        bool last;

        w.todo = w.p = strdup(path);
        if (!w.todo)
                return -ENOMEM;
        if (fstat(dirfd, &w.root_st) < 0)
                return negative_errno();
        if (path[0] == '/' && !in_root)
                return -EXDEV;
        w.cur = open_root_dup(dirfd);
        if (w.cur < 0)
                return w.cur;

        while ((comp = walk_next_component(&w, &last))) {
                _cleanup_close_ int next = -EBADF;
                struct stat st;
                bool stay;
                int r;

                if (streq(comp, "."))
                        continue;
                next = walk_open(&w, comp, &stay);
                if (stay)
                        continue;
                if (next == -ENOENT && last && (flags & O_CREAT)) {
                        int fd = openat(w.cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, 0644);
                        return fd < 0 ? negative_errno() : fd;
                }
                if (next < 0)
                        return next;
                if (fstat(next, &st) < 0)
                        return negative_errno();
                if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
                        r = walk_symlink(&w, next);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (last && (flags & O_DIRECTORY) && !S_ISDIR(st.st_mode))
                        return -ENOTDIR;
                if (last)
                        return (flags & O_PATH) ? TAKE_FD(next) : reopen_fd(next, flags);
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
                safe_close(w.cur);
                w.cur = TAKE_FD(next);
        }
        /* the path ends in the directory we are at */
        return (flags & O_PATH) ? TAKE_FD(w.cur) : reopen_fd(w.cur, flags);
}

/* openat2()'s EAGAIN (a rename or mount raced the lookup): retries before the userspace walk; the
 * first ones at once, then up to the second bound after 100 µs, the rest after 1 ms (~0.3 s in all). */
#define OPENAT_BENEATH_ATTEMPTS 64
#define OPENAT_BENEATH_SPINS 8
#define OPENAT_BENEATH_SHORT_SLEEPS 32

/* Set by tests to exercise the fallback; also set once the kernel said ENOSYS. */
bool openat_beneath_use_fallback = false;

int openat_beneath(int dirfd, const char *path, int flags, bool in_root) {
        struct open_how how = {
                .flags = (uint64_t) (flags | O_CLOEXEC),
                .resolve = RESOLVE_NO_MAGICLINKS | (in_root ? RESOLVE_IN_ROOT : RESOLVE_BENEATH),
        };
        int fd;

        if (how.flags & O_CREAT)
                how.mode = 0644;
        if (openat_beneath_use_fallback)
                return openat_beneath_fallback(dirfd, path, flags, in_root);
        /* With RESOLVE_BENEATH/RESOLVE_IN_ROOT the kernel fails a lookup that crosses ".." with
         * EAGAIN when any rename or mount happened anywhere meanwhile (it cannot prove the ".."
         * stayed inside); that is a race to retry, not an error. */
        for (unsigned attempt = 0; attempt < OPENAT_BENEATH_ATTEMPTS; attempt++) {
                fd = sys_openat2(dirfd, path, &how, sizeof(how));
                if (fd >= 0 || errno != EAGAIN)
                        break;
                /* Under a storm of mounts elsewhere, back off a little: first spin, then sleep. */
                if (attempt >= OPENAT_BENEATH_SPINS)
                        (void) usleep(attempt < OPENAT_BENEATH_SHORT_SLEEPS ? 100 : 1000);
        }
        if (fd < 0 && errno == EAGAIN)
                /* Still racing after ~0.3 s: walk the path ourselves, component by component, with
                 * the same confinement (it cannot see the mount/rename seqcount, so it does not care). */
                return openat_beneath_fallback(dirfd, path, flags, in_root);
        if (fd < 0 && errno == ENOSYS) {
                openat_beneath_use_fallback = true;
                return openat_beneath_fallback(dirfd, path, flags, in_root);
        }
        if (fd < 0)
                return negative_errno();
        return fd;
}

int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, allocated = 0;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max_size)
                return -EFBIG;
        for (;;) {
                ssize_t k;

                if (n + 1 >= allocated) {
                        size_t na = allocated ? allocated * 2 : 4096;
                        char *nb;

                        /* Room for one byte more than allowed (to see a file that grew) and the NUL. */
                        if (na > max_size + 2)
                                na = max_size + 2;
                        if (na <= n + 1)
                                return -EFBIG;
                        nb = realloc(buf, na);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        allocated = na;
                }
                k = read(fd, buf + n, allocated - n - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max_size)
                        return -EFBIG;
        }
        if (!buf) {
                buf = strdup("");
                if (!buf)
                        return -ENOMEM;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_full_file_at(int dirfd, const char *path, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        return read_full_fd(fd, max_size, ret, ret_size);
}

int write_string_at(int dirfd, const char *path, const char *content, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        size_t l = strlen(content);

        fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);
        if (fd < 0)
                return negative_errno();
        while (l > 0) {
                ssize_t k = write(fd, content, l);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                content += k;
                l -= (size_t) k;
        }
        return 0;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int fd_get_path(int fd, char **ret) {
        char p[64], buf[PATH_MAX];
        ssize_t n;

        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        n = readlink(p, buf, sizeof(buf) - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

int fd_get_size(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        if (S_ISBLK(st.st_mode))
                return ioctl(fd, BLKGETSIZE64, ret) < 0 ? negative_errno() : 0;
        return -EBADFD;
}

int safe_atou64(const char *s, uint64_t *ret) {
        char *e = NULL;
        unsigned long long v;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &e, 10);       /* decimal, as newuidmap reads ids: "010" is ten, "0x10" junk */
        if (errno > 0)
                return -errno;
        if (!e || *e)
                return -EINVAL;
        *ret = (uint64_t) v;
        return 0;
}

int safe_atou32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r;

        r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

uint64_t timespec_to_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * USEC_PER_SEC + (uint64_t) ts->tv_nsec / NSEC_PER_USEC;
}

uint64_t now_usec(int clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return timespec_to_usec(&ts);
}

char *format_bytes(char *buf, size_t l, uint64_t bytes) {
        static const char suffixes[] = "BKMGTPE";
        double v = (double) bytes;
        size_t i = 0;

        while (v >= 1024.0 && i + 1 < sizeof(suffixes) - 1) {
                v /= 1024.0;
                i++;
        }
        if (i == 0)
                snprintf(buf, l, "%" PRIu64 "B", bytes);
        else
                snprintf(buf, l, "%.1f%c", v, suffixes[i]);
        return buf;
}

char *fs_context_messages(int fs_fd) {
        _cleanup_free_ char *all = NULL;
        char buf[1024];

        if (fs_fd < 0)
                return NULL;
        for (;;) {
                ssize_t n = read(fs_fd, buf, sizeof(buf) - 1);
                char *j;

                if (n <= 0)
                        break;
                buf[n] = 0;
                if (n > 0 && buf[n - 1] == '\n')
                        buf[n - 1] = 0;
                /* Kernel prefixes: "e " error, "w " warning, "i " info. */
                const char *m = (buf[0] && buf[1] == ' ') ? buf + 2 : buf;
                j = all ? strjoin(all, "; ", m) : strdup(m);
                if (!j)
                        break;
                free(all);
                all = j;
        }
        return TAKE_PTR(all);
}

char *path_auxiliary(const char *image, const char *suffix) {
        size_t l;

        assert(image && suffix);
        l = strlen(image);
        if (endswith(image, ".raw"))
                l -= STRLEN(".raw");
        char *p = malloc(l + strlen(suffix) + 1);
        if (!p)
                return NULL;
        memcpy(p, image, l);
        strcpy(p + l, suffix);
        return p;
}

/* Only root may change what path names: every directory from / down, and the file itself, belongs
 * to root and is writable by nobody else (group/other write, which also shows an ACL granting
 * write). A sticky world-writable directory (/tmp) does not count: others may create there. The
 * path is resolved once, without following symlinks, and the final inode must be expected's. */
int path_is_root_controlled(const char *path, const struct stat *expected, char **ret_reason) {
        _cleanup_free_ char *todo = strdup(path), *walked = strdup("");
        _cleanup_close_ int cur = -EBADF;
        struct stat st;
        char *save = NULL;

        assert(path && ret_reason);
        if (!todo || !walked)
                return -ENOMEM;
        if (!path_is_absolute(path))
                return -EINVAL;
        cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        for (char *comp = strtok_r(todo, "/", &save);; comp = strtok_r(NULL, "/", &save)) {
                if (cur < 0 || fstat(cur, &st) < 0)
                        return negative_errno();
                if (S_ISLNK(st.st_mode))
                        return asprintf_safe(ret_reason, "%s is a symlink", walked) < 0 ? -ENOMEM : 0;
                if (st.st_uid != 0 || (st.st_mode & 0022))
                        return asprintf_safe(ret_reason, "%s is %s", isempty(walked) ? "/" : walked,
                                             st.st_uid != 0 ? "not owned by root" : "writable by group or others") < 0 ? -ENOMEM : 0;
                if (!comp)
                        break;
                if (!path_is_safe_component(comp))
                        return asprintf_safe(ret_reason, "%s is not a canonical path", path) < 0 ? -ENOMEM : 0;
                char *j = strjoin(walked, "/", comp);
                if (!j)
                        return -ENOMEM;
                free(walked);
                walked = j;
                int next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                safe_close(cur);
                cur = next;
        }
        if (expected && (st.st_dev != expected->st_dev || st.st_ino != expected->st_ino))
                return asprintf_safe(ret_reason, "%s changed while it was checked", path) < 0 ? -ENOMEM : 0;
        *ret_reason = NULL;
        return 1;
}

#define ROOT_CONTROLLED_MAX_DEPTH 64

int fd_is_root_controlled_beneath(int root_fd, int fd, const char *what, char **ret_reason) {
        _cleanup_close_ int cur = -EBADF;
        struct stat root_st, st;

        assert(root_fd >= 0 && fd >= 0 && what && ret_reason);
        if (fstat(root_fd, &root_st) < 0)
                return negative_errno();
        cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        for (unsigned depth = 0;; depth++) {
                if (depth >= ROOT_CONTROLLED_MAX_DEPTH)
                        return -ELOOP;
                if (cur < 0 || fstat(cur, &st) < 0)
                        return negative_errno();
                if (depth > 0 && st.st_dev == root_st.st_dev && st.st_ino == root_st.st_ino)
                        break;
                if (st.st_uid != 0 || (st.st_mode & 0022)) {
                        _cleanup_free_ char *p = NULL;
                        (void) fd_get_path(cur, &p);
                        return asprintf_safe(ret_reason, "%s: %s is %s", what, strna(p),
                                             st.st_uid != 0 ? "not owned by root" : "writable by group or others") < 0 ? -ENOMEM : 0;
                }
                int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                struct stat up_st;
                if (up >= 0 && fstat(up, &up_st) >= 0 && up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino) {
                        safe_close(up);
                        break;  /* "/" */
                }
                safe_close(cur);
                cur = up;
        }
        *ret_reason = NULL;
        return 1;
}

int parse_boolean(const char *s) {
        static const char * const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char * const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

int parse_size(const char *s, uint64_t *ret) {
        static const char suffixes[] = "KMGT";
        _cleanup_free_ char *digits = NULL;
        const char *sfx;
        uint64_t v, mult = 1;
        size_t n;
        int r;

        if (isempty(s))
                return -EINVAL;
        n = strspn(s, "0123456789");
        if (s[n] && (s[n + 1] || !(sfx = strchr(suffixes, s[n]))))
                return -EINVAL;
        if (s[n])
                for (const char *p = suffixes; p <= sfx; p++)
                        mult *= 1024;
        digits = strndup(s, n);
        if (!digits)
                return -ENOMEM;
        r = safe_atou64(digits, &v);
        if (r < 0)
                return r;
        if (v > UINT64_MAX / mult)
                return -ERANGE;
        *ret = v * mult;
        return 0;
}

const char *sx_runtime_dir(void) {
        return TEST_HOOK(runtime_dir, "/run/sysext-idmap");
}

int sx_staging_dir_make(char **ret) {
        _cleanup_free_ char *staging = strjoin(sx_runtime_dir(), "/staging");
        int r;

        if (!staging)
                return -ENOMEM;
        r = mkdir_p(staging, 0700);
        if (r < 0)
                return sx_error(r, "failed to create %s: %m", staging);
        *ret = TAKE_PTR(staging);
        return 0;
}
