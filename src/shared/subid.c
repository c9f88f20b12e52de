/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <pwd.h>

#include "idmap.h"
#include "subid.h"

#define SUBID_FILE_MAX (4U * 1024U * 1024U)

/* One NAME:START:COUNT line: 1 if it is the user's and well formed (*ret filled), else 0. */
static int subid_line(char *line, const char *name, uid_t uid, SubidRange *ret) {
        char *f[3], *save = NULL;
        uint32_t owner, start, count;
        size_t n = 0;

        for (char *p = strtok_r(line, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
                if (n >= 3)
                        return 0;
                f[n++] = p;
        }
        if (n != 3)
                return 0;
        if (!(name && streq(f[0], name)) && !(idmap_parse_number(f[0], &owner) >= 0 && owner == uid))
                return 0;
        if (idmap_parse_number(f[1], &start) < 0 || idmap_parse_number(f[2], &count) < 0 || count == 0)
                return 0;
        if ((uint64_t) start + count - 1 > IDMAP_ID_MAX)
                return 0;
        *ret = (SubidRange) { start, count };
        return 1;
}

int subid_parse(const char *text, const char *name, uid_t uid, SubidRange **ret, size_t *ret_n) {
        _cleanup_free_ char *copy = strdup(text ?: "");
        _cleanup_free_ SubidRange *v = NULL;
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return -ENOMEM;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                SubidRange r;
                if (line[0] == '#' || subid_line(line, name, uid, &r) <= 0)
                        continue;
                SubidRange *nv = reallocarray(v, n + 1, sizeof(SubidRange));
                if (!nv)
                        return -ENOMEM;
                v = nv;
                v[n++] = r;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static int user_name(uid_t uid, char **ret) {
        struct passwd pw, *res = NULL;
        char buf[4096];

        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(res->pw_name);
        return *ret ? 0 : -ENOMEM;
}

/* The text of root + file if root alone can change it; NULL text if it does not exist or others
 * could change it (*ret_ignored, may be NULL, then says why). */
static int subid_read(const char *root, const char *file, char **ret_text, char **ret_ignored) {
        _cleanup_free_ char *path = path_join_root(root, file), *why = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!path)
                return -ENOMEM;
        *ret_text = NULL;
        if (ret_ignored)
                *ret_ignored = NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return sx_error(negative_errno(), "%s: cannot open: %m", path);
        /* The inode we read is the one checked: the whole path, and that it is still this file. */
        r = path_is_root_controlled(path, &st, &why);
        if (r < 0)
                return sx_error(r, "%s: cannot check who may change it: %m", path);
        if (r == 0 || !S_ISREG(st.st_mode)) {
                if (ret_ignored)
                        *ret_ignored = why ? TAKE_PTR(why) : strjoin(path, " is not a regular file");
                return 0;
        }
        r = read_full_fd(fd, SUBID_FILE_MAX, ret_text, NULL);
        if (r < 0)
                return sx_error(r, "%s: cannot read: %m", path);
        return 0;
}

int subid_load(const char *root, const char *file, uid_t uid, SubidRange **ret, size_t *ret_n, char **ret_ignored) {
        _cleanup_free_ char *text = NULL, *name = NULL;
        int r;

        *ret = NULL;
        *ret_n = 0;
        r = subid_read(root, file, &text, ret_ignored);
        if (r < 0 || !text)
                return r;
        r = user_name(uid, &name);
        if (r < 0)
                return r;
        return subid_parse(text, name, uid, ret, ret_n);
}

int subid_owner(const char *root, const char *file, uid_t id, uid_t *ret_owner) {
        _cleanup_free_ char *text = NULL;
        char *save = NULL;
        int r;

        r = subid_read(root, file, &text, NULL);
        if (r < 0 || !text)
                return r;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[3], *fs = NULL;
                uint32_t start, count, owner;
                size_t n = 0;

                if (line[0] == '#')
                        continue;
                for (char *p = strtok_r(line, ":", &fs); p && n < 3; p = strtok_r(NULL, ":", &fs))
                        f[n++] = p;
                if (n != 3 || strtok_r(NULL, ":", &fs) || idmap_parse_number(f[1], &start) < 0 ||
                    idmap_parse_number(f[2], &count) < 0 || count == 0 || (uint64_t) start + count - 1 > IDMAP_ID_MAX)
                        continue;
                if ((uint64_t) id < start || (uint64_t) id - start >= count)
                        continue;
                if (idmap_parse_number(f[0], &owner) < 0) {
                        struct passwd pw, *res = NULL;
                        char buf[4096];
                        if (getpwnam_r(f[0], &pw, buf, sizeof(buf), &res) != 0 || !res)
                                continue;
                        owner = res->pw_uid;
                }
                *ret_owner = owner;
                return 1;
        }
        return 0;
}
