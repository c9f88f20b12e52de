/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by every module: cleanup attributes, ownership hand-over, string vectors,
 * error messages and fd-first file reading. */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define STRLEN(x) (sizeof("" x "") - 1)

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s) (!(s) || !(s)[0])
#define strna(s) ((s) ?: "n/a")
#define strempty(s) ((s) ?: "")

/* Hand over ownership: returns the value and resets the variable so its cleanup does nothing. */
#define TAKE_GENERIC(var, type, nullvalue)                       \
        ({                                                       \
                type *_pvar_ = &(var);                           \
                type _var_ = *_pvar_;                            \
                type _nullvalue_ = nullvalue;                    \
                *_pvar_ = _nullvalue_;                           \
                _var_;                                           \
        })
#define TAKE_PTR(p) TAKE_GENERIC(p, typeof(p), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)          \
        static inline void func##p(type *p) {            \
                if (*p)                                  \
                        func(*p);                        \
        }

/* errno helpers: always return a negative errno, never 0, even if errno was somehow unset. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* ---- error messages ----
 * Library code returns a negative errno that says what happened (callers decide on it, never on
 * the text) and may record one human-readable message naming the object and the reason. The CLI
 * and the PAM module print it; the library never logs.
 *   sx_error(r, fmt, ...)         records fmt; "%m" in fmt stands for strerror(-r). Returns r.
 *   sx_error_prefix(r, fmt, ...)  puts context in front of what a callee recorded
 *                                 ("image foo: <callee's message>"), or of strerror(-r) if the
 *                                 last message recorded was for another errno. Returns r.
 *   sx_error_fallback(r, fmt, ...) records fmt only if the last message was recorded for another
 *                                 errno (the callee said nothing about r). Returns r.
 * They look at the errno a message was recorded for, never at its text. */
void copy_message(char *dst, size_t size, const char *src);
int sx_error(int r, const char *fmt, ...) _printf_(2, 3);
int sx_error_prefix(int r, const char *fmt, ...) _printf_(2, 3);
int sx_error_fallback(int r, const char *fmt, ...) _printf_(2, 3);
const char *sx_last_error(void);
void sx_clear_error(void);

/* Debug logging, enabled by SYSEXT_IDMAP_DEBUG=1 or --debug; goes to stderr. */
extern bool sx_debug_enabled;
void sx_debug(const char *fmt, ...) _printf_(1, 2);

/* ---- string vectors (NULL terminated) ---- */
char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char * const *l);
int strv_push(char ***l, char *value);          /* takes ownership of value, also on failure */
int strv_extend(char ***l, const char *value);  /* copies value */
bool strv_contains(char * const *l, const char *s);
int strv_split(const char *s, const char *separators, char ***ret); /* drops empty words */
char *strv_join(char * const *l, const char *separator);
#define STRV_FOREACH(s, l) for (char * const *s = (l); s && *s; s++)

char *strjoin_real(const char *a, ...) __attribute__((sentinel));
#define strjoin(a, ...) strjoin_real((a), __VA_ARGS__, NULL)
int asprintf_safe(char **ret, const char *fmt, ...) _printf_(2, 3);
bool startswith(const char *s, const char *prefix);
const char *startswith_ptr(const char *s, const char *prefix); /* pointer behind prefix, or NULL */
bool endswith(const char *s, const char *suffix);
bool string_has_cc(const char *s);      /* control characters (incl. DEL) */
bool utf8_is_valid(const char *s);
/* A copy safe to print on one line: control characters, backslash and non-UTF-8 bytes as \xNN. */
char *cescape(const char *s);

/* ---- paths ---- */
/* "/" + root + path, with duplicate slashes folded; root NULL or "/" means the host root. */
char *path_join_root(const char *root, const char *path);
bool path_is_absolute(const char *p);
bool path_is_safe_component(const char *name); /* not empty, not "." or "..", no '/' */
/* A file beside an image, systemd's rule: NAME.raw → NAME<suffix>; any other name (a directory)
 * gets the suffix appended. NULL on out of memory. */
char *path_auxiliary(const char *image, const char *suffix);

/* ---- fd-first file access ---- */
/* Open a path strictly beneath dirfd: no symlink may point outside, no magic links, no
 * mount-point crossing unless allowed. Returns an fd or negative errno. */
int openat_beneath(int dirfd, const char *path, int flags, bool in_root);
/* Without openat2() (ENOSYS: old kernel, valgrind) openat_beneath() walks the path in userspace. Tests
 * set this to exercise that fallback. */
extern bool openat_beneath_use_fallback;
/* Read a whole regular file (opened O_NONBLOCK|O_NOCTTY so a FIFO cannot hang us) of at most
 * max_size bytes. ret_size may be NULL. Refuses non-regular files with -EBADFD. */
int read_full_file_at(int dirfd, const char *path, size_t max_size, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size);
int write_string_at(int dirfd, const char *path, const char *content, mode_t mode);
int mkdir_p(const char *path, mode_t mode);
/* The path the kernel has for fd (readlink of /proc/self/fd/N). */
int fd_get_path(int fd, char **ret);
/* Size of a regular file or block device; -EBADFD for anything else. */
int fd_get_size(int fd, uint64_t *ret);

/* Whether only root can change what path names (every directory from / down and the file itself
 * owned by root, not writable by group or others, no symlink on the way), and it still is the inode
 * expected (may be NULL). 1 yes, 0 no with *ret_reason saying why ("/var/tmp is writable by group or
 * others"), negative errno if it could not be checked. */
int path_is_root_controlled(const char *path, const struct stat *expected, char **ret_reason);
/* The same for fd and every directory above it up to (not including) root_fd's directory, walked
 * by ".." after the path was resolved (so a symlink on the way counts by its target): what a --root
 * tree holds is judged within that tree. what names fd in *ret_reason. 1 yes, 0 no with
 * *ret_reason saying why, negative errno if it could not be checked. */
int fd_is_root_controlled_beneath(int root_fd, int fd, const char *what, char **ret_reason);

/* ---- misc ---- */
/* "1024", "64K", "256M", "2G", "1T" (powers of 1024). */
int parse_size(const char *s, uint64_t *ret);
/* $SYSEXT_IDMAP_RUNTIME_DIR or /run/sysext-idmap: lock file and staging directory. */
const char *sx_runtime_dir(void);
/* <runtime dir>/staging, created (0700) if missing: where a private mount namespace attaches
 * detached mounts it must reach by path. *ret is freed by the caller. */
int sx_staging_dir_make(char **ret);
/* 1 for yes/true/on/1/y/t, 0 for no/false/off/0/n/f (any case), -EINVAL otherwise, as systemd. */
int parse_boolean(const char *s);
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
int unhexchar(char c);          /* 0..15, or -EINVAL */
#define USEC_PER_SEC UINT64_C(1000000)
#define NSEC_PER_USEC UINT64_C(1000)
uint64_t timespec_to_usec(const struct timespec *ts);
uint64_t now_usec(int clock);   /* CLOCK_REALTIME / CLOCK_MONOTONIC in µs */
char *format_bytes(char *buf, size_t l, uint64_t bytes);
#define FORMAT_BYTES_MAX 16
