/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <dirent.h>

#include "config.h"

#define CONFIG_WHITESPACE " \t"
#define CONFIG_DROPINS_MAX 256
#define CONFIG_LOCATION_MAX 64          /* "file:line" beyond the file name */

/* Lowest priority first: a later directory's main file and drop-ins win. */
static const char * const config_dirs[] = { "usr/lib/systemd", "usr/local/lib/systemd", "run/systemd", "etc/systemd" };

static char *strip(char *s) {
        size_t n;

        s += strspn(s, CONFIG_WHITESPACE);
        for (n = strlen(s); n > 0 && strchr(CONFIG_WHITESPACE, s[n - 1]); n--)
                s[n - 1] = 0;
        return s;
}

static bool key_is_valid(const char *k) {
        if (isempty(k))
                return false;
        for (const char *p = k; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 127 || *p == '[' || *p == ']')
                        return false;
        return true;
}

static int config_line(const char *file, unsigned line, char *l, char **section, ConfigAssignment cb, void *userdata) {
        char *eq, *key, *value;

        l = strip(l);
        if (isempty(l) || l[0] == '#' || l[0] == ';')
                return 0;
        if (l[0] == '[') {
                size_t n = strlen(l);
                char *name;
                if (n < 3 || l[n - 1] != ']')
                        return sx_error(-EBADMSG, "%s:%u: invalid section header", file, line);
                l[n - 1] = 0;
                name = l + 1;
                if (!key_is_valid(name))
                        return sx_error(-EBADMSG, "%s:%u: invalid section name", file, line);
                free(*section);
                *section = strdup(name);
                return *section ? 0 : -ENOMEM;
        }
        eq = strchr(l, '=');
        if (!eq)
                return sx_error(-EBADMSG, "%s:%u: missing '=' (neither an assignment nor a section header)", file, line);
        *eq = 0;
        key = strip(l);
        value = strip(eq + 1);
        if (!key_is_valid(key))
                return sx_error(-EBADMSG, "%s:%u: invalid key", file, line);
        if (string_has_cc(value))
                return sx_error(-EBADMSG, "%s:%u: control characters in the value of %s=", file, line, key);
        return cb(file, line, *section, key, value, userdata);
}

int config_parse_text(const char *file, const char *text, size_t size, ConfigAssignment cb, void *userdata) {
        _cleanup_free_ char *buf = NULL, *section = NULL, *joined = NULL;
        unsigned line = 0, first = 0;
        int r;

        assert(file && (text || size == 0) && cb);
        if (memchr(text ?: "", 0, size))
                return sx_error(-EBADMSG, "%s: contains a NUL byte", file);
        buf = strndup(text ?: "", size);
        if (!buf)
                return -ENOMEM;
        if (!utf8_is_valid(buf))
                return sx_error(-EBADMSG, "%s: not valid UTF-8", file);
        /* strtok_r would skip empty lines and so miscount: walk line by line instead */
        for (char *l = buf, *next; l; l = next) {
                next = strchr(l, '\n');
                if (next)
                        *next++ = 0;
                line++;
                size_t n = strlen(l);
                bool cont = n > 0 && l[n - 1] == '\\';
                if (cont)
                        l[n - 1] = ' ';
                char *j = strjoin(strempty(joined), l);
                if (!j)
                        return -ENOMEM;
                free(joined);
                joined = j;
                if (!first)
                        first = line;
                if (cont && next)
                        continue;
                r = config_line(file, first, joined, &section, cb, userdata);
                if (r < 0)
                        return r;
                free(joined);
                joined = NULL;
                first = 0;
        }
        return 0;
}

void sysext_config_done(SysextConfig *c) {
        free(c->mutable_mode);
        free(c->mutable_where);
        free(c->image_policy);
        free(c->image_policy_where);
        strv_free(c->warnings);
        *c = (SysextConfig) {};
}

typedef struct LoadState {
        SysextConfig *config;
        const char *section;
} LoadState;

static int set_located(char **value, char **where, const char *v, const char *file, unsigned line) {
        char *a = strdup(v), *b = NULL;

        if (!a || asprintf_safe(&b, "%s:%u", file, line) < 0) {
                free(a);
                return -ENOMEM;
        }
        free(*value);
        free(*where);
        *value = a;
        *where = b;
        return 0;
}

static int sysext_assignment(const char *file, unsigned line, const char *section, const char *key, const char *value,
                             void *userdata) {
        LoadState *st = userdata;
        bool ours = section && streq(section, st->section);
        char *w = NULL;

        if (ours && streq(key, "Mutable"))
                return set_located(&st->config->mutable_mode, &st->config->mutable_where, value, file, line);
        if (ours && streq(key, "ImagePolicy"))
                return set_located(&st->config->image_policy, &st->config->image_policy_where, value, file, line);
        /* What a newer systemd may know is a warning, as systemd's conf-parser gives; X- sections are silent. */
        if (section && startswith(section, "X-"))
                return 0;
        int r = ours ? asprintf_safe(&w, "%s:%u: unknown key '%s' in section [%s], ignoring.", file, line, key, section)
                : section ? asprintf_safe(&w, "%s:%u: unknown section [%s], ignoring.", file, line, section)
                          : asprintf_safe(&w, "%s:%u: assignment outside of a section, ignoring.", file, line);
        if (r < 0)
                return -ENOMEM;
        return strv_push(&st->config->warnings, w);
}

/* 0 if rel does not exist beneath root_fd, 1 if it was read. The file is not followed if it is a
 * symlink: its directories are what is checked for who controls it. */
static int config_read_one(int root_fd, const char *rel, LoadState *st) {
        _cleanup_free_ char *name = strjoin("/", rel), *dir = NULL, *text = NULL, *reason = NULL;
        _cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
        const char *base = strrchr(rel, '/');
        struct stat stt;
        size_t size = 0;
        int r;

        assert(base);
        dir = strndup(rel, (size_t) (base - rel));
        if (!name || !dir)
                return -ENOMEM;
        dir_fd = openat_beneath(root_fd, dir, O_PATH | O_DIRECTORY, true);
        if (dir_fd == -ENOENT || dir_fd == -ENOTDIR)
                return 0;
        if (dir_fd < 0)
                return sx_error(dir_fd, "/%s: cannot open: %m", dir);
        fd = openat(dir_fd, base + 1, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open (a symlink is not followed): %m", name);
        if (fstat(fd, &stt) < 0)
                return sx_error(negative_errno(), "%s: %m", name);
        if (!S_ISREG(stt.st_mode))
                return sx_error(-EBADFD, "%s: not a regular file", name);
        /* it decides whether /usr becomes writable and which images are trusted */
        if (stt.st_uid != 0 || (stt.st_mode & 0022))
                return sx_error(-EPERM, "%s: is %s; refusing to use it as configuration", name,
                                stt.st_uid != 0 ? "not owned by root" : "writable by group or others");
        r = fd_is_root_controlled_beneath(root_fd, dir_fd, name, &reason);
        if (r < 0)
                return sx_error(r, "%s: cannot check who controls it: %m", name);
        if (r == 0)
                return sx_error(-EPERM, "%s; refusing to use it as configuration", reason);
        r = read_full_fd(fd, CONFIG_FILE_MAX, &text, &size);
        if (r < 0)
                return sx_error(r, "%s: cannot read: %m", name);
        r = config_parse_text(name, text, size, sysext_assignment, st);
        return r < 0 ? r : 1;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

/* The drop-in names of one directory, added to *names unless a higher-priority directory (seen
 * before) had them; *dirs[i] says where names[i] lives. */
static int dropins_collect(int root_fd, const char *dir, char ***names, char ***dirs) {
        _cleanup_close_ int fd = openat_beneath(root_fd, dir, O_RDONLY | O_DIRECTORY, true);
        DIR *d;
        int r = 0;

        if (fd == -ENOENT || fd == -ENOTDIR)
                return 0;
        if (fd < 0)
                return sx_error(fd, "/%s: cannot open: %m", dir);
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        TAKE_FD(fd);
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (de->d_name[0] == '.' || !endswith(de->d_name, ".conf") || strv_contains(*names, de->d_name))
                        continue;
                if (strv_length(*names) >= CONFIG_DROPINS_MAX)
                        r = sx_error(-E2BIG, "/%s: more than %u drop-ins", dir, CONFIG_DROPINS_MAX);
                else if ((r = strv_extend(names, de->d_name)) >= 0)
                        r = strv_extend(dirs, dir);
        }
        closedir(d);
        return r;
}

static int dropins_load(int root_fd, const char *name, LoadState *st) {
        _cleanup_strv_free_ char **names = NULL, **dirs = NULL;
        size_t n;
        int r = 0;

        for (size_t i = ELEMENTSOF(config_dirs); i-- > 0;) {
                _cleanup_free_ char *dir = NULL;
                if (asprintf_safe(&dir, "%s/%s.conf.d", config_dirs[i], name) < 0)
                        return -ENOMEM;
                r = dropins_collect(root_fd, dir, &names, &dirs);
                if (r < 0)
                        return r;
        }
        n = strv_length(names);
        /* in name order, each from its directory */
        char **sorted = calloc(n + 1, sizeof(char *));
        if (!sorted)
                return -ENOMEM;
        if (n > 0) {    /* names is NULL without drop-ins */
                memcpy(sorted, names, n * sizeof(char *));
                qsort(sorted, n, sizeof(char *), name_cmp);
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *rel = NULL;
                size_t k = 0;
                while (names[k] != sorted[i])
                        k++;
                if (asprintf_safe(&rel, "%s/%s", dirs[k], names[k]) < 0)
                        r = -ENOMEM;
                else
                        r = config_read_one(root_fd, rel, st);
        }
        free(sorted);
        return r < 0 ? r : 0;
}

int sysext_config_load(const char *root, const char *name, const char *section, SysextConfig *ret) {
        _cleanup_(sysext_config_done) SysextConfig c = {};
        _cleanup_close_ int root_fd = -EBADF;
        LoadState st = { .config = &c, .section = section };
        int r = 0;

        assert(name && path_is_safe_component(name) && section && ret);
        root_fd = open(isempty(root) ? "/" : root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return sx_error(negative_errno(), "%s: cannot open root directory: %m", root);
        for (size_t i = ELEMENTSOF(config_dirs); r == 0 && i-- > 0;) {
                _cleanup_free_ char *rel = NULL;
                if (asprintf_safe(&rel, "%s/%s.conf", config_dirs[i], name) < 0)
                        return -ENOMEM;
                r = config_read_one(root_fd, rel, &st);         /* the first one found */
        }
        if (r < 0)
                return r;
        r = dropins_load(root_fd, name, &st);
        if (r < 0)
                return r;
        *ret = c;
        c = (SysextConfig) {};
        return 0;
}
