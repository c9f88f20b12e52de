/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* os-release / extension-release parsing (the syntax systemd's env-file parser accepts, but strict
 * about junk) and systemd-sysext's compatibility rules. */

#include <dirent.h>
#include <strings.h>
#include <sys/utsname.h>
#include <sys/xattr.h>

#include "extension-release.h"
#include "image.h"

#define RELEASE_FILE_MAX (1024U * 1024U)
#define RELEASE_LINE_MAX (64U * 1024U)
#define RELEASE_KEYS_MAX 1024U

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

ReleaseFile *release_file_free(ReleaseFile *f) {
        if (!f)
                return NULL;
        strv_free(f->pairs);
        free(f);
        return NULL;
}

const char *release_file_get(const ReleaseFile *f, const char *key) {
        if (!f || !key)
                return NULL;
        for (char **p = f->pairs; p && p[0] && p[1]; p += 2)
                if (streq(p[0], key))
                        return p[1];
        return NULL;
}

/* Later assignments override earlier ones, as with systemd's load_env_file_pairs(). Returns 1 if the
 * key is new, 0 if it replaced an earlier value. */
static int release_file_set(ReleaseFile *f, char *key, char *value) {
        int r;

        for (char **p = f->pairs; p && p[0] && p[1]; p += 2)
                if (streq(p[0], key)) {
                        free(key);
                        free(p[1]);
                        p[1] = value;
                        return 0;
                }
        r = strv_push(&f->pairs, key);
        if (r < 0) {
                free(value);
                return r;
        }
        r = strv_push(&f->pairs, value);
        return r < 0 ? r : 1;
}

/* ---- parser ---- */

typedef struct Parser {
        const char *what;
        const char *p, *end;
        unsigned line;
        char *buf;              /* value being assembled */
        size_t n, allocated;
        unsigned n_keys;        /* different keys so far */
} Parser;

static bool is_newline(char c) {
        return c == '\n' || c == '\r';  /* systemd treats a lone CR as a line break, too */
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static int parser_append(Parser *ps, char c) {
        if (ps->n + 2 > ps->allocated) {
                size_t na = ps->allocated ? ps->allocated * 2 : 64;
                char *nb = realloc(ps->buf, na);

                if (!nb)
                        return -ENOMEM;
                ps->buf = nb;
                ps->allocated = na;
        }
        ps->buf[ps->n++] = c;
        ps->buf[ps->n] = 0;
        return 0;
}

/* Consume one character, counting lines. */
static char parser_next(Parser *ps) {
        char c = *ps->p++;

        if (c == '\n' || (c == '\r' && (ps->p >= ps->end || *ps->p != '\n')))
                ps->line++;
        return c;
}

static bool key_is_valid(const char *k, size_t n) {
        if (n == 0 || !(k[0] == '_' || (k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z')))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!(k[i] == '_' || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
                      (k[i] >= '0' && k[i] <= '9')))
                        return false;
        return true;
}

static bool utf8_is_valid_n(const char *s, size_t n) {
        _cleanup_free_ char *c = strndup(s, n);

        return c && utf8_is_valid(c);
}

/* Reject binary junk before interpreting anything: control characters other than TAB and line
 * breaks (this includes NUL), invalid UTF-8, and overlong lines. */
static int release_data_validate(const char *what, const char *data, size_t size) {
        unsigned line = 1;

        for (size_t start = 0; start < size; line++) {
                size_t e = start;

                while (e < size && !is_newline(data[e])) {
                        unsigned char c = (unsigned char) data[e];

                        if ((c < ' ' && c != '\t') || c == 127)
                                return sx_error(-EBADMSG, "%s: line %u: contains control character 0x%02x (binary data?)",
                                                what, line, c);
                        e++;
                }
                if (e - start > RELEASE_LINE_MAX)
                        return sx_error(-EBADMSG, "%s: line %u: line longer than %u bytes", what, line,
                                        RELEASE_LINE_MAX);
                if (!utf8_is_valid_n(data + start, e - start))
                        return sx_error(-EBADMSG, "%s: line %u: invalid UTF-8", what, line);
                if (e + 1 < size && data[e] == '\r' && data[e + 1] == '\n')
                        e++;
                start = e + 1;
        }
        return 0;
}

static void parser_skip_comment(Parser *ps) {
        /* Like systemd: a backslash at the end of a comment line continues the comment. */
        while (ps->p < ps->end) {
                char c = parser_next(ps);

                if (c == '\\' && ps->p < ps->end)
                        (void) parser_next(ps);
                else if (is_newline(c))
                        return;
        }
}

/* Reads "KEY" up to '='. Returns 1 with the key, 0 if the line has no '=' (ignored, like systemd). */
static int parser_key(Parser *ps, char **ret) {
        const char *k = ps->p;
        unsigned line = ps->line;
        size_t n;

        while (ps->p < ps->end && *ps->p != '=' && !is_newline(*ps->p))
                ps->p++;
        if (ps->p >= ps->end || *ps->p != '=') {
                sx_debug("%s: line %u: no '=', ignoring line", ps->what, line);
                return 0;
        }
        n = (size_t) (ps->p - k);
        while (n > 0 && is_blank(k[n - 1]))
                n--;
        if (!key_is_valid(k, n)) {
                /* At most 64 bytes of it, not cutting a UTF-8 sequence (found by fuzz-release). */
                size_t shown = n > 64 ? 64 : n;
                while (shown > 0 && shown < n && ((unsigned char) k[shown] & 0xC0) == 0x80)
                        shown--;
                return sx_error(-EBADMSG, "%s: line %u: invalid key '%.*s'", ps->what, line, (int) shown, k);
        }
        ps->p++;        /* '=' */
        *ret = strndup(k, n);
        return *ret ? 1 : -ENOMEM;
}

static int parser_single_quoted(Parser *ps, unsigned line) {
        for (;;) {
                char c;
                int r;

                if (ps->p >= ps->end)
                        return sx_error(-EBADMSG, "%s: line %u: unterminated single quote", ps->what, line);
                c = parser_next(ps);
                if (c == '\'')
                        return 0;
                r = parser_append(ps, c);
                if (r < 0)
                        return r;
        }
}

static int parser_double_quoted(Parser *ps, unsigned line) {
        for (;;) {
                char c;
                int r;

                if (ps->p >= ps->end)
                        return sx_error(-EBADMSG, "%s: line %u: unterminated double quote", ps->what, line);
                c = parser_next(ps);
                if (c == '"')
                        return 0;
                if (c == '\\' && ps->p < ps->end) {
                        c = parser_next(ps);
                        if (is_newline(c))
                                continue;               /* line continuation */
                        /* Only the characters that need escaping in shell double quotes lose the backslash. */
                        if (!strchr("\"\\`$", c)) {
                                r = parser_append(ps, '\\');
                                if (r < 0)
                                        return r;
                        }
                }
                r = parser_append(ps, c);
                if (r < 0)
                        return r;
        }
}

/* An unquoted run: quotes are literal here (as in systemd), a backslash escapes the next character,
 * unescaped trailing whitespace is dropped. Stops before the line break. */
static int parser_unquoted(Parser *ps) {
        size_t keep = ps->n;

        while (ps->p < ps->end && !is_newline(*ps->p)) {
                char c = parser_next(ps);
                int r;

                if (c == '\\') {
                        if (ps->p >= ps->end)
                                break;
                        c = parser_next(ps);
                        if (is_newline(c))
                                continue;
                } else if (is_blank(c)) {
                        r = parser_append(ps, c);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = parser_append(ps, c);
                if (r < 0)
                        return r;
                keep = ps->n;
        }
        ps->n = keep;
        if (ps->buf)
                ps->buf[ps->n] = 0;
        return 0;
}

static int parser_value(Parser *ps, char **ret) {
        int r;

        ps->n = 0;
        for (;;) {
                unsigned line = ps->line;
                char c;

                while (ps->p < ps->end && is_blank(*ps->p))
                        ps->p++;
                if (ps->p >= ps->end || is_newline(*ps->p))
                        break;
                c = *ps->p;
                if (c == '\'' || c == '"') {
                        (void) parser_next(ps);
                        r = c == '\'' ? parser_single_quoted(ps, line) : parser_double_quoted(ps, line);
                } else
                        r = parser_unquoted(ps);
                if (r < 0)
                        return r;
        }
        if (ps->p < ps->end)
                (void) parser_next(ps);         /* the line break */
        *ret = ps->n > 0 ? strndup(ps->buf, ps->n) : strdup("");
        return *ret ? 0 : -ENOMEM;
}

static int parser_run(Parser *ps, ReleaseFile *f) {
        int r;

        while (ps->p < ps->end) {
                _cleanup_free_ char *key = NULL;
                char *value = NULL, c = *ps->p;

                if (is_blank(c) || is_newline(c)) {
                        (void) parser_next(ps);
                        continue;
                }
                if (c == '#' || c == ';') {
                        parser_skip_comment(ps);
                        continue;
                }
                unsigned line = ps->line;
                r = parser_key(ps, &key);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = parser_value(ps, &value);
                if (r < 0)
                        return r;
                r = release_file_set(f, TAKE_PTR(key), value);
                if (r < 0)
                        return r;
                /* Every assignment scans the keys so far: bound them, or a crafted 1 MiB file with
                 * 140000 keys keeps us busy for a minute (found with fuzz-release's quadratic check). */
                if (r > 0 && ++ps->n_keys > RELEASE_KEYS_MAX)
                        return sx_error(-EBADMSG, "%s: line %u: more than %u different keys", ps->what, line,
                                        RELEASE_KEYS_MAX);
        }
        return 0;
}

int release_file_parse(const char *what, const char *data, size_t size, ReleaseFile **ret) {
        _cleanup_(release_file_freep) ReleaseFile *f = NULL;
        Parser ps = {
                .what = what ?: "release file",
                .p = data,
                .end = data + size,
                .line = 1,
        };
        int r;

        if (!data && size > 0)
                return -EINVAL;
        r = release_data_validate(ps.what, data, size);
        if (r < 0)
                return r;
        f = calloc(1, sizeof(ReleaseFile));
        if (!f)
                return -ENOMEM;
        f->pairs = calloc(1, sizeof(char *));
        if (!f->pairs)
                return -ENOMEM;
        r = parser_run(&ps, f);
        free(ps.buf);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

/* ---- loading ---- */

static int release_file_load_fd(int fd, const char *what, ReleaseFile **ret) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_fd(fd, RELEASE_FILE_MAX, &data, &size);
        if (r == -EFBIG)
                return sx_error(r, "%s: file too large (more than %u bytes)", what, RELEASE_FILE_MAX);
        if (r == -EBADFD)
                return sx_error(r, "%s: not a regular file", what);
        if (r < 0)
                return sx_error(r, "%s: cannot read: %m", what);
        return release_file_parse(what, data, size, ret);
}

static int open_root(const char *root) {
        int fd = open(isempty(root) ? "/" : root, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open root directory: %m", isempty(root) ? "/" : root);
        return fd;
}

int host_release_load(const char *root, ReleaseFile **ret) {
        static const char * const candidates[] = { "etc/os-release", "usr/lib/os-release" };
        _cleanup_close_ int rfd = -EBADF;

        rfd = open_root(root);
        if (rfd < 0)
                return rfd;
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                _cleanup_free_ char *what = path_join_root(root, candidates[i]);
                _cleanup_close_ int fd = -EBADF;

                if (!what)
                        return -ENOMEM;
                /* RESOLVE_IN_ROOT: etc/os-release is usually a symlink to ../usr/lib/os-release. */
                fd = openat_beneath(rfd, candidates[i], O_RDONLY | O_NONBLOCK | O_NOCTTY, true);
                if (fd == -ENOENT)
                        continue;
                if (fd < 0)
                        return sx_error(fd, "%s: cannot open: %m", what);
                return release_file_load_fd(fd, what, ret);
        }
        return sx_error(-ENOENT, "%s: no os-release found (neither etc/os-release nor usr/lib/os-release)",
                        isempty(root) ? "/" : root);
}

const char *host_scope(const char *root) {
        _cleanup_close_ int rfd = -EBADF, fd = -EBADF;

        rfd = open(isempty(root) ? "/" : root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0)
                return "system";
        fd = openat_beneath(rfd, "etc/initrd-release", O_PATH, true);
        return fd >= 0 ? "initrd" : "system";
}

/* Is this file explicitly marked as usable under another name (user.extension-release.strict=false)? */
static bool extension_release_is_relaxed(int fd, const char *fn) {
        char v[64];
        ssize_t n;

        n = fgetxattr(fd, "user.extension-release.strict", v, sizeof(v) - 1);
        if (n < 0) {
                sx_debug("%s: no readable user.extension-release.strict xattr (%s), ignoring", fn, strerror(errno));
                return false;
        }
        v[n] = 0;
        if (parse_boolean(v) != 0) {
                sx_debug("%s: user.extension-release.strict is not false, ignoring", fn);
                return false;
        }
        return true;
}

/* Opens a candidate in the fallback scan: a regular file named extension-release.<valid name>, not a
 * symlink, with the relaxed xattr. Returns the fd, or -ENOENT if it is not a candidate. */
static int extension_release_candidate(int dfd, const struct dirent *de) {
        _cleanup_close_ int fd = -EBADF;
        const char *suffix;
        struct stat st;

        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                return -ENOENT;
        suffix = startswith_ptr(de->d_name, "extension-release.");
        if (!suffix || !image_name_is_valid(suffix))
                return -ENOENT;
        fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -ENOENT;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return -ENOENT;
        if (!extension_release_is_relaxed(fd, de->d_name))
                return -ENOENT;
        return TAKE_FD(fd);
}

/* systemd's fallback when the exact name is missing (the image file may have been renamed on
 * deployment): exactly one extension-release.* whose xattr user.extension-release.strict is false.
 * Two such files are ambiguous (-ENOTUNIQ), like systemd. */
static int extension_release_fallback(int image_root_fd, const char *dir, const char *image_name,
                                      int *ret_fd, char **ret_fn) {
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_free_ char *found = NULL;
        _cleanup_close_ int found_fd = -EBADF;
        int dfd;

        dfd = openat_beneath(image_root_fd, dir, O_RDONLY | O_DIRECTORY, true);
        if (dfd < 0)
                return -ENOENT;
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return -ENOMEM;
        }
        for (struct dirent *de; (de = readdir(d));) {
                int fd = extension_release_candidate(dirfd(d), de);

                if (fd < 0)
                        continue;
                if (found) {
                        safe_close(fd);
                        return sx_error(-ENOTUNIQ, "%s: more than one extension-release file in /%s has "
                                        "user.extension-release.strict=false (%s, %s)",
                                        image_name, dir, found, de->d_name);
                }
                found = strdup(de->d_name);
                found_fd = fd;
                if (!found)
                        return -ENOMEM;
        }
        if (!found)
                return -ENOENT;
        *ret_fd = TAKE_FD(found_fd);
        *ret_fn = TAKE_PTR(found);
        return 0;
}

int extension_release_load(int image_root_fd, bool usr_only, ImageClass class, const char *image_name,
                           ReleaseFile **ret, char **ret_path) {
        const ImageClassInfo *cls = image_class_info(class);
        const char *dir = usr_only ? cls->release_dir_in_usr : cls->release_dir;
        _cleanup_free_ char *rel = NULL, *fn = NULL, *logical = NULL, *what = NULL;
        _cleanup_(release_file_freep) ReleaseFile *f = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!image_name_is_valid(image_name))
                return sx_error(-EINVAL, "%s: invalid image name", strna(image_name));
        fn = strjoin("extension-release.", image_name);
        rel = fn && dir ? strjoin(dir, "/", fn) : NULL;
        if (!fn || (dir && !rel))
                return -ENOMEM;
        /* A usr-only image has no /etc: it cannot be a configuration extension. */
        fd = dir ? openat_beneath(image_root_fd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, true) : -ENOENT;
        if (fd == -ENOENT) {
                free(fn);
                fn = NULL;
                r = dir ? extension_release_fallback(image_root_fd, dir, image_name, &fd, &fn) : -ENOENT;
                if (r == -ENOENT)
                        return sx_error(r, "%s: no /%s/extension-release.%s in image",
                                        image_name, cls->release_dir, image_name);
                if (r < 0)
                        return r;
        } else if (fd < 0)
                return sx_error(fd, "%s: cannot open /%s/%s: %m", image_name, cls->release_dir, fn);

        /* The path as the image sees it, also for a usr-only tree. */
        logical = strjoin("/", cls->release_dir, "/", fn);
        what = logical ? strjoin(image_name, ": ", logical) : NULL;
        if (!what)
                return -ENOMEM;
        r = release_file_load_fd(fd, what, &f);
        if (r < 0)
                return r;
        r = image_has_os_release(image_root_fd, usr_only);
        if (r < 0)
                return r;
        if (r > 0)
                return sx_error(-EMEDIUMTYPE, "%s: image contains /usr/lib/os-release, it is an OS image, "
                                "not an extension; refusing", image_name);
        *ret = TAKE_PTR(f);
        if (ret_path)
                *ret_path = TAKE_PTR(logical);
        return 0;
}

int image_has_os_release(int image_root_fd, bool usr_only) {
        _cleanup_close_ int fd = -EBADF;

        /* Only /usr/lib/os-release marks an OS: systemd-sysext 252 allows an extension to carry
         * /etc/os-release (it is not merged anyway). */
        fd = openat_beneath(image_root_fd, usr_only ? "lib/os-release" : "usr/lib/os-release", O_PATH, true);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return sx_error(fd, "cannot check for /usr/lib/os-release in image: %m");
        return 1;
}

/* ---- compatibility ---- */

const char *native_architecture(void) {
        static const struct {
                const char *machine;
                const char *arch;
        } table[] = {
                { "x86_64", "x86-64" },         { "i386", "x86" },      { "i486", "x86" },
                { "i586", "x86" },              { "i686", "x86" },      { "aarch64", "arm64" },
                { "aarch64_be", "arm64-be" },   { "armv8l", "arm" },    { "armv7l", "arm" },
                { "armv7b", "arm-be" },         { "armv6l", "arm" },    { "armv6b", "arm-be" },
                { "armv5tl", "arm" },           { "armv5tel", "arm" },  { "armv4l", "arm" },
                { "arm", "arm" },               { "riscv32", "riscv32" }, { "riscv64", "riscv64" },
                { "ppc64le", "ppc64-le" },      { "ppc64", "ppc64" },   { "ppcle", "ppc-le" },
                { "ppc", "ppc" },               { "s390x", "s390x" },   { "s390", "s390" },
                { "loongarch64", "loongarch64" }, { "mips64", "mips64" }, { "mips", "mips" },
                { "parisc64", "parisc64" },     { "parisc", "parisc" }, { "sparc64", "sparc64" },
                { "alpha", "alpha" },           { "ia64", "ia64" },     { "m68k", "m68k" },
        };
        static __thread char cached[sizeof(((struct utsname *) NULL)->machine)];
        struct utsname u;

        /* Like systemd's uname_architecture(): the kernel's idea, not the compiler's. */
        if (uname(&u) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(u.machine, table[i].machine))
                        return table[i].arch;
        snprintf(cached, sizeof(cached), "%s", u.machine);
        return cached;
}

static int refuse(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int refuse(char **ret_reason, const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s)
                return -ENOMEM;
        if (ret_reason)
                *ret_reason = s;
        else
                free(s);
        return 0;
}

static int check_scope(const ImageClassInfo *cls, const ReleaseFile *ext, const char *scope, char **ret_reason) {
        _cleanup_strv_free_ char **l = NULL;
        const char *v = release_file_get(ext, cls->scope_key);
        int r;

        if (!scope)
                return 1;
        /* Absent means "system portable"; an empty value means no scope at all (as in systemd). */
        r = strv_split(v ?: "system portable", " \t\n\r", &l);
        if (r < 0)
                return r;
        if (strv_contains(l, scope))
                return 1;
        if (!v)
                return refuse(ret_reason, "%s is not set (default 'system portable') and does not "
                              "include host scope '%s'", cls->scope_key, scope);
        return refuse(ret_reason, "%s=%s does not include host scope '%s'", cls->scope_key, v, scope);
}

static int check_architecture(const ReleaseFile *ext, char **ret_reason) {
        const char *v = release_file_get(ext, "ARCHITECTURE"), *native = native_architecture();

        if (isempty(v) || streq(v, "_any") || (native && streq(v, native)))
                return 1;
        return refuse(ret_reason, "ARCHITECTURE=%s does not match host architecture %s", v, strna(native));
}

static bool id_like_contains(const ReleaseFile *host, const char *id) {
        _cleanup_strv_free_ char **l = NULL;
        const char *like = release_file_get(host, "ID_LIKE");

        if (isempty(like) || strv_split(like, " \t\n\r", &l) < 0)
                return false;
        return strv_contains(l, id);
}

/* 1: ID matches, go on with the version checks; 2: ID=_any, compatible, no version checks (as systemd);
 * 0: refused. */
static int check_id(const ReleaseFile *ext, const ReleaseFile *host, char **ret_reason) {
        const char *id = release_file_get(ext, "ID"), *host_id = release_file_get(host, "ID");
        const char *like = release_file_get(host, "ID_LIKE");

        if (isempty(id))
                return refuse(ret_reason, "ID is not set (must be the host's ID=%s or _any)", host_id);
        if (streq(id, "_any"))
                return 2;
        if (streq(id, host_id) || id_like_contains(host, id))
                return 1;
        if (!isempty(like))
                return refuse(ret_reason, "ID=%s does not match host ID=%s or ID_LIKE=%s", id, host_id, like);
        return refuse(ret_reason, "ID=%s does not match host ID=%s", id, host_id);
}

static int check_version(const ImageClassInfo *cls, const ReleaseFile *ext, const ReleaseFile *host, char **ret_reason) {
        const char *host_level = release_file_get(host, cls->level_key),
                *host_version = release_file_get(host, "VERSION_ID"),
                *level = release_file_get(ext, cls->level_key),
                *version = release_file_get(ext, "VERSION_ID");

        /* If both declare an API level of the class, that decides; otherwise the OS version must match, unless
         * the host has none (rolling release). */
        if (!isempty(host_level) && !isempty(level)) {
                if (streq(host_level, level))
                        return 1;
                return refuse(ret_reason, "%s=%s does not match host %s=%s", cls->level_key, level,
                              cls->level_key, host_level);
        }
        if (isempty(host_version))
                return 1;
        if (isempty(version))
                return refuse(ret_reason, "VERSION_ID is not set (nor a %s the host shares), host has "
                              "VERSION_ID=%s", cls->level_key, host_version);
        if (streq(version, host_version))
                return 1;
        return refuse(ret_reason, "VERSION_ID=%s does not match host VERSION_ID=%s", version, host_version);
}

int extension_release_check(ImageClass class, const char *image_name, const ReleaseFile *ext, const ReleaseFile *host,
                            const char *scope, char **ret_reason) {
        const ImageClassInfo *cls = image_class_info(class);
        int r;

        if (isempty(release_file_get(host, "ID")))
                return sx_error(-EINVAL, "host os-release: ID= is not set or empty");
        if (!ext || strv_length(ext->pairs) == 0)
                return refuse(ret_reason, "extension-release of %s carries no data", strna(image_name));

        r = check_scope(cls, ext, scope, ret_reason);
        if (r <= 0)
                return r;
        r = check_architecture(ext, ret_reason);
        if (r <= 0)
                return r;
        r = check_id(ext, host, ret_reason);
        if (r <= 0)
                return r;
        if (r == 2)
                return 1;
        return check_version(cls, ext, host, ret_reason);
}
