/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dm-verity through libcryptsetup, the one file that calls it (see verity-setup.h): the hash
 * tree's superblock, the userspace check that reads the whole data area on kernels without
 * device-mapper, and activation, reuse and removal of /dev/mapper devices where there is one.
 * Built only when meson finds libcryptsetup. */

#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

#include <libcryptsetup.h>

#include "dlopen-util.h"
#include "verity-setup.h"

/* 4 MiB */
#define VERITY_READAHEAD_SECTORS 8192U
#define VERITY_SECTOR_SIZE 512U
/* The last error or normal-level message libcryptsetup logged, for our messages. */
#define CRYPT_MESSAGE_MAX 512U
/* "/proc/self/fd/" and an int */
#define PROC_FD_PATH_MAX 32U
/* "sysext-idmap-" HASHPREFIX "-" DEV "-" INO */
#define DM_NAME_MAX 128U
#define DM_NAME_HASH_CHARS 16

/* libcryptsetup is loaded on first use (dlopen-util.h), under the soname of the headers we build
 * against (Debian 12: libcryptsetup.so.12). */
#define LIBCRYPTSETUP_SONAME "libcryptsetup.so.12"

static void *cryptsetup_dl;
static typeof(crypt_activate_by_signed_key) *sym_crypt_activate_by_signed_key;
static typeof(crypt_activate_by_volume_key) *sym_crypt_activate_by_volume_key;
static typeof(crypt_deactivate_by_name) *sym_crypt_deactivate_by_name;
static typeof(crypt_free) *sym_crypt_free;
static typeof(crypt_get_type) *sym_crypt_get_type;
static typeof(crypt_get_verity_info) *sym_crypt_get_verity_info;
static typeof(crypt_get_volume_key_size) *sym_crypt_get_volume_key_size;
static typeof(crypt_init) *sym_crypt_init;
static typeof(crypt_init_by_name) *sym_crypt_init_by_name;
static typeof(crypt_load) *sym_crypt_load;
static typeof(crypt_set_data_device) *sym_crypt_set_data_device;
static typeof(crypt_set_debug_level) *sym_crypt_set_debug_level;
static typeof(crypt_set_log_callback) *sym_crypt_set_log_callback;
static typeof(crypt_volume_key_get) *sym_crypt_volume_key_get;

static const DlopenSymbol cryptsetup_symbols[] = {
        DLSYM(crypt_activate_by_signed_key),
        DLSYM(crypt_activate_by_volume_key),
        DLSYM(crypt_deactivate_by_name),
        DLSYM(crypt_free),
        DLSYM(crypt_get_type),
        DLSYM(crypt_get_verity_info),
        DLSYM(crypt_get_volume_key_size),
        DLSYM(crypt_init),
        DLSYM(crypt_init_by_name),
        DLSYM(crypt_load),
        DLSYM(crypt_set_data_device),
        DLSYM(crypt_set_debug_level),
        DLSYM(crypt_set_log_callback),
        DLSYM(crypt_volume_key_get),
};

static int dlopen_cryptsetup(const char *label) {
        int r = dlopen_many(&cryptsetup_dl, LIBCRYPTSETUP_SONAME, "to check verity", cryptsetup_symbols,
                            ELEMENTSOF(cryptsetup_symbols));

        return r < 0 && label ? sx_error_prefix(r, "%s", label) : r;
}

struct VeritySetup {
        LoopDevice *hash, *data;
        struct crypt_device *cd;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, sym_crypt_free);

static __thread char crypt_last_message[CRYPT_MESSAGE_MAX];

static void crypt_log_cb(int level, const char *msg, void *userdata) {
        size_t l;

        if (level != CRYPT_LOG_ERROR && level != CRYPT_LOG_NORMAL) {
                if (sx_debug_enabled && level != CRYPT_LOG_DEBUG_JSON)
                        sx_debug("libcryptsetup: %s", msg);
                return;
        }
        (void) snprintf(crypt_last_message, sizeof(crypt_last_message), "%s", msg);
        l = strlen(crypt_last_message);
        while (l > 0 && crypt_last_message[l - 1] == '\n')
                crypt_last_message[--l] = 0;
        sx_debug("libcryptsetup: %s", crypt_last_message);
}

static void crypt_log_setup(void) {
        static bool done;

        if (!done) {
                sym_crypt_set_log_callback(NULL, crypt_log_cb, NULL);
                if (sx_debug_enabled)
                        sym_crypt_set_debug_level(CRYPT_DEBUG_ALL);
                done = true;
        }
}

int verity_setup_supported(const char *label) {
        return dlopen_cryptsetup(label);
}

VeritySetup *verity_setup_free(VeritySetup *v) {
        if (!v)
                return NULL;
        if (v->cd)
                sym_crypt_free(v->cd);
        loop_device_free(v->hash);
        loop_device_free(v->data);
        free(v);
        return NULL;
}

static bool fd_is_regular(int fd) {
        struct stat st;

        return fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);
}

static int loop_for(const char *label, const char *what, const VerityArea *a, uint64_t size, LoopDevice **ret) {
        int r;

        assert(label && what && a && ret);
        sx_clear_error();
        r = loop_device_make(a->fd, a->offset, size, ret);
        if (r < 0)
                return sx_error_prefix(r, "%s: cannot set up loop device for the verity %s", label, what);
        /* libcryptsetup reads the whole device sequentially in small blocks: a large readahead keeps
         * the loop worker busy with big requests (about +30% here). */
        (void) ioctl((*ret)->fd, BLKRASET, (unsigned long) VERITY_READAHEAD_SECTORS);
        return r;
}

/* The superblock of the hash tree in v->cd; returns in *ret_bytes how much data it covers, which
 * must fit into data_size. */
static int load_superblock(const char *label, VeritySetup *v, bool userspace_check, size_t root_hash_size,
                           uint64_t data_size, uint64_t *ret_bytes) {
        struct crypt_params_verity params = {};
        uint64_t bytes;
        int r;

        assert(label && v && v->cd && ret_bytes);
        crypt_last_message[0] = 0;
        /* CRYPT_VERITY_CHECK_HASH belongs into the load parameters, not the activation flags (there
         * the same bit means CRYPT_ACTIVATE_NO_UUID and nothing would be checked). */
        r = sym_crypt_load(v->cd, CRYPT_VERITY, &(struct crypt_params_verity) {
                .hash_area_offset = 0,
                .flags = userspace_check ? CRYPT_VERITY_CHECK_HASH : 0,
        });
        if (r < 0)
                return sx_error(r, "%s: no valid verity superblock in the hash tree%s%s", label,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        r = sym_crypt_get_verity_info(v->cd, &params);
        if (r < 0)
                return sx_error(r, "%s: cannot read verity parameters: %m", label);
        if (params.data_block_size == 0 || params.data_block_size % VERITY_SECTOR_SIZE != 0 ||
            params.data_size > UINT64_MAX / params.data_block_size)
                return sx_error(-EBADMSG, "%s: verity superblock has invalid data geometry", label);
        if (params.flags & CRYPT_VERITY_NO_HEADER)
                return sx_error(-EBADMSG, "%s: verity hash tree without superblock is not supported", label);
        if ((size_t) sym_crypt_get_volume_key_size(v->cd) != root_hash_size)
                return sx_error(-EBADMSG, "%s: root hash has %zu bytes, but the verity hash %s produces %i",
                                label, root_hash_size, strna(params.hash_name), sym_crypt_get_volume_key_size(v->cd));
        bytes = params.data_size * params.data_block_size;
        if (bytes == 0 || bytes > data_size)
                return sx_error(-EBADMSG, "%s: verity hash tree covers %" PRIu64 " bytes, but the data area has only %" PRIu64,
                                label, bytes, data_size);
        *ret_bytes = bytes;
        return 0;
}

/* The data loop device covers exactly bytes. The check reads every block once: straight from the
 * image file where the data area starts at its beginning (a bare image), so it comes from the
 * file's page cache rather than through a fresh loop device's; the mount uses the loop device,
 * which reads the same file. (Either way the check is of a snapshot: see --verity=kernel.) */
static int attach_data(const char *label, VeritySetup *v, const VerityArea *data, uint64_t bytes, bool userspace_check) {
        char proc[PROC_FD_PATH_MAX];
        int r;

        assert(v && data);
        r = loop_for(label, "data", data, bytes, &v->data);
        if (r < 0)
                return r;
        (void) snprintf(proc, sizeof(proc), "/proc/self/fd/%d", data->fd);
        if (userspace_check && data->offset == 0 && fd_is_regular(data->fd))
                r = sym_crypt_set_data_device(v->cd, proc);
        else
                r = sym_crypt_set_data_device(v->cd, v->data->node);
        if (r < 0)
                return sx_error(r, "%s: cannot attach verity data device: %m", label);
        return 0;
}

int verity_setup_new(const char *label, const VerityArea *data, const VerityArea *hash, size_t root_hash_size,
                     bool userspace_check, VeritySetup **ret) {
        _cleanup_(verity_setup_freep) VeritySetup *v = NULL;
        uint64_t bytes = 0;
        int r;

        assert(label && data && hash && ret);
        crypt_log_setup();
        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r = loop_for(label, "hash tree", hash, hash->size, &v->hash);
        if (r < 0)
                return r;
        r = sym_crypt_init(&v->cd, v->hash->node);
        if (r < 0)
                return sx_error(r, "%s: cannot open verity hash device: %m", label);
        r = load_superblock(label, v, userspace_check, root_hash_size, data->size, &bytes);
        if (r < 0)
                return r;
        r = attach_data(label, v, data, bytes, userspace_check);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

int verity_setup_check(const char *label, VeritySetup *v, const uint8_t *root_hash, size_t root_hash_size) {
        int r;

        assert(label && v && v->cd && root_hash);
        crypt_last_message[0] = 0;
        /* name NULL: nothing is activated; CHECK_HASH (set at load) makes libcryptsetup read every
         * data and hash block and compare the tree up to the root hash. */
        r = sym_crypt_activate_by_volume_key(v->cd, NULL, (const char *) root_hash, root_hash_size, 0);
        if (r == -EPERM || r == -EFAULT)
                return sx_error(-EBADMSG, "%s: verity data does not match the root hash (userspace check)%s%s", label,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        if (r < 0)
                return sx_error(r, "%s: userspace verity check failed: %m%s%s", label,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        return 0;
}

int verity_setup_data_fd(VeritySetup *v) {
        int fd;

        assert(v && v->data);
        fd = fcntl(v->data->fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? negative_errno() : fd;
}

bool verity_setup_kernel_available(void) {
        static int cached = -1;
        int fd;

        if (cached >= 0)
                return cached;
        fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0) {
                close(fd);
                cached = 1;
        } else
                /* ENOENT/ENODEV/ENXIO: no device-mapper in this kernel (or no node); EACCES: not root */
                cached = 0;
        return cached;
}

static int open_mapper(const char *label, const char *name, int *ret) {
        _cleanup_free_ char *node = strjoin("/dev/mapper/", name);
        int fd;

        assert(label && ret);
        if (!node)
                return -ENOMEM;
        fd = open(node, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return sx_error(negative_errno(), "%s: cannot open %s: %m", label, node);
        *ret = fd;
        return 0;
}

/* An existing device of that name is reused only if it carries the same root hash; the name
 * already encodes the image inode. Returns 1 if reused, 0 if there is none. */
static int reuse_existing(const char *label, const char *name, const uint8_t *hash, size_t size, int *ret_fd) {
        _cleanup_(sym_crypt_freep) struct crypt_device *cd = NULL;
        char key[ROOT_HASH_MAX];
        size_t n = sizeof(key);
        int r;

        assert(label && name && hash);
        r = sym_crypt_init_by_name(&cd, name);
        if (r == -ENODEV)
                return 0;
        if (r < 0)
                return sx_error(r, "%s: cannot inspect existing device-mapper device %s: %m", label, name);
        if (!streq(strempty(sym_crypt_get_type(cd)), CRYPT_VERITY) ||
            sym_crypt_volume_key_get(cd, CRYPT_ANY_SLOT, key, &n, NULL, 0) < 0 || n != size || memcmp(key, hash, size) != 0)
                return sx_error(-EEXIST, "%s: device-mapper device %s already exists for something else", label, name);
        r = open_mapper(label, name, ret_fd);
        return r < 0 ? r : 1;
}

/* The kernel checks the signature only if its keyring holds the certificate; we already did in
 * userspace, so an unknown key is not fatal. */
static int activate(const char *label, const VerityData *v, VeritySetup *vs, const char *name) {
        int r = -ENOKEY;

        assert(label && v && vs && name);
        crypt_last_message[0] = 0;
        if (v->signature && v->signed_by_trusted)
                r = sym_crypt_activate_by_signed_key(vs->cd, name, (const char *) v->root_hash, v->root_hash_size,
                                                 (const char *) v->signature, v->signature_size, CRYPT_ACTIVATE_READONLY);
        if (r < 0)
                r = sym_crypt_activate_by_volume_key(vs->cd, name, (const char *) v->root_hash, v->root_hash_size,
                                                 CRYPT_ACTIVATE_READONLY);
        if (r == -EEXIST)
                return sx_error(r, "%s: device-mapper device %s appeared concurrently", label, name);
        if (r < 0)
                return sx_error(r, "%s: cannot activate dm-verity device %s: %m%s%s", label, name,
                                crypt_last_message[0] ? ": " : "", crypt_last_message);
        return 0;
}

int verity_setup_activate(const DissectedImage *m, const VerityData *v, VeritySetup *vs, VerityResult *res, int *ret_fd) {
        _cleanup_free_ char *hex = NULL;
        char name[DM_NAME_MAX];
        struct stat st;
        int r;

        assert(m && v && vs && res && ret_fd);
        hex = verity_hexmem(v->root_hash, v->root_hash_size);
        if (!hex)
                return -ENOMEM;
        if (fstat(m->fd, &st) < 0)
                return negative_errno();
        (void) snprintf(name, sizeof(name), "sysext-idmap-%.*s-%" PRIx64 "-%" PRIx64, DM_NAME_HASH_CHARS, hex,
                        (uint64_t) st.st_dev, (uint64_t) st.st_ino);
        r = reuse_existing(m->path, name, v->root_hash, v->root_hash_size, ret_fd);
        if (r < 0)
                return r;
        res->dm_name = strdup(name);
        if (!res->dm_name)
                return -ENOMEM;
        if (r > 0)
                return 0;
        r = activate(m->path, v, vs, name);
        if (r < 0)
                return r;
        res->dm_owned = true;
        return open_mapper(m->path, name, ret_fd);
}

int verity_setup_deactivate(const char *name, bool deferred) {
        int r;

        assert(name);
        r = dlopen_cryptsetup(NULL);
        if (r < 0)
                return r;
        return sym_crypt_deactivate_by_name(NULL, name, deferred ? CRYPT_DEACTIVATE_DEFERRED : 0);
}
