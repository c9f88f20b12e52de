/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <getopt.h>
#include <strings.h>

#include "config.h"
#include "broker-client.h"
#include "dissect.h"
#include "extension.h"
#include "idmap.h"
#include "image.h"
#include "merge.h"
#include "merge-broker.h"
#include "output.h"
#include "overlay.h"
#include "run.h"
#include "run-broker.h"
#include "test-hooks.h"
#include "test-hooks-env.h"

static const char *arg_root = NULL;
static JsonMode arg_json = JSON_OFF;
static bool arg_force = false;
static bool arg_no_reload = false;
static bool arg_legend = true;
static Idmap *arg_idmap = NULL;
static pid_t arg_namespace_of = 0;
static ImagePolicy *arg_image_policy = NULL;
static const char *arg_image_policy_string = NULL;     /* as given, for the broker */
static const char *arg_broker = NULL;                  /* --broker=PATH */
static bool arg_broker_no = false;                      /* --broker=no */
static VerityMode arg_verity = VERITY_MODE_AUTO;
static bool arg_validate = false;
static ImageArg *arg_images = NULL;
static size_t arg_n_images = 0;
static bool arg_discover = false;
static PrivateUsersSpec arg_private_users = { .mode = PRIVATE_USERS_NO };
static const char *arg_user = NULL;
static MutableMode arg_mutable = _MUTABLE_MODE_INVALID;        /* not given: $SYSTEMD_SYSEXT_MUTABLE_MODE, sysext.conf, no */
static bool arg_mutable_given = false;
static NoexecMode arg_noexec = NOEXEC_DEFAULT;
static const char *arg_overlay_options = NULL;
static bool arg_always_refresh = false;
static ImageClass arg_class = IMAGE_CLASS_SYSEXT;      /* the invocation name's, or --class= */

/* One line, whatever bytes a file name or an image brought along. */
static void log_error_last(int r) {
        const char *m = sx_last_error();
        _cleanup_free_ char *e = cescape(m ?: strerror(r < 0 ? -r : r));

        fprintf(stderr, "%s\n", e ?: "out of memory");
}

static void print_notice(const char *m, void *userdata) {
        _cleanup_free_ char *e = cescape(m);

        fprintf(stderr, "%s\n", e ?: m);
}

/* The environment is the caller's: read here, in the CLI, never in the library (test-hooks.h). */
static int cli_hierarchies(char ***ret) {
        const ImageClassInfo *cls = image_class_info(arg_class);
        const char *e = secure_getenv(cls->hierarchies_env);

        return hierarchies_parse(e ?: cls->default_hierarchies, cls->hierarchies_env, ret);
}

/* --mutable= wins over $SYSTEMD_SYSEXT_MUTABLE_MODE, which wins over Mutable= in sysext.conf; and
 * --image-policy= over ImagePolicy=. The overlay options come from the environment only. */
static int cli_config(void) {
        _cleanup_(sysext_config_done) SysextConfig conf = {};
        const char *env = secure_getenv("SYSTEMD_SYSEXT_MUTABLE_MODE");
        int r;

        r = sysext_config_load(arg_root, "sysext", "SysExt", &conf);
        if (r < 0)
                return r;
        STRV_FOREACH(w, conf.warnings)
                print_notice(*w, NULL);
        if (arg_mutable < 0 && env) {
                arg_mutable = mutable_mode_from_string(env);
                if (arg_mutable < 0)
                        return sx_error(-EINVAL, "SYSTEMD_SYSEXT_MUTABLE_MODE: unknown mode '%s' (see --mutable=help)", env);
        }
        if (arg_mutable < 0 && conf.mutable_mode) {
                arg_mutable = mutable_mode_from_string(conf.mutable_mode);
                if (arg_mutable < 0)
                        return sx_error(-EINVAL, "%s: Mutable=: unknown mode '%s' (see --mutable=help)", conf.mutable_where,
                                        conf.mutable_mode);
        }
        if (arg_mutable < 0)
                arg_mutable = MUTABLE_NO;
        if (!arg_image_policy && conf.image_policy) {
                r = image_policy_from_string(conf.image_policy, &arg_image_policy);
                if (r < 0)
                        return sx_error_prefix(r, "%s: ImagePolicy=", conf.image_policy_where);
        }
        arg_overlay_options = secure_getenv("SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS");
        if (arg_overlay_options) {
                r = overlay_options_check(arg_overlay_options);
                if (r < 0)
                        return sx_error_prefix(r, "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS");
        }
        return 0;
}

/* images: the verb's arguments (NULL = discover); the context borrows the strings. */
static int make_context(MergeContext *c, char **images) {
        ImageSource *sources = NULL;
        size_t n = strv_length(images);
        int r;

        r = cli_hierarchies(&c->hierarchies);
        if (r < 0)
                return r;
        if (n > 0) {
                sources = calloc(n, sizeof(ImageSource));
                if (!sources)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        sources[i] = (ImageSource) { .path = images[i] };
        }
        c->image_class = arg_class;
        c->root = arg_root;
        c->idmap = arg_idmap;
        c->images = sources;
        c->n_images = n;
        c->force = arg_force;
        c->no_reload = arg_no_reload;
        c->namespace_of = arg_namespace_of;
        c->policy = arg_image_policy;
        c->verity_mode = arg_verity;
        c->mutable_mode = arg_mutable;
        c->noexec = arg_noexec;
        c->overlay_options = arg_overlay_options;
        c->always_refresh = arg_always_refresh;
        /* root's --namespace-of: trusted images from the broker's layer store when it runs */
        if (arg_namespace_of > 0 && !arg_broker_no)
                c->broker = arg_broker ?: BROKER_SOCKET_DEFAULT;
        c->notice = print_notice;
        return 0;
}

static void context_done(MergeContext *c) {
        strv_free(c->hierarchies);
        free((ImageSource *) c->images);
}

static ExtensionOptions extension_options(const HostInfo *host, bool mount) {
        return (ExtensionOptions) {
                .host = host,
                .image_class = arg_class,
                .force = arg_force,
                .mount = mount,
                .policy = arg_image_policy,
                .verity_mode = arg_verity,
                .verity_root = arg_root,
        };
}

/* ---- list ---- */

/* Every discovered image, opened (dissected, checked, mounted detached) to tell whether it can be
 * used; a failure to open one is that entry's error, not the command's. */
static int list_open_entries(const HostInfo *host, Image **images, size_t n, ListEntry **ret) {
        ListEntry *entries = calloc(n + 1, sizeof(ListEntry));
        ExtensionOptions o = extension_options(host, true);

        if (!entries)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                entries[i].image = images[i];
                if (images[i]->masked)
                        continue;
                /* extension_open takes ownership; list keeps its own copy of the image */
                Image *copy = image_dup(images[i]);
                sx_clear_error();
                if (!copy || extension_open(copy, &o, &entries[i].ext) < 0)
                        entries[i].error = strdup(sx_last_error() ?: "failed to open image");
        }
        *ret = entries;
        return 0;
}

static int verb_list(int argc, char **argv) {
        _cleanup_(host_info_done) HostInfo host = {};
        Image **images = NULL;
        ListEntry *entries = NULL;
        size_t n = 0;
        int r;

        r = host_info_load(arg_root, &host);
        if (r < 0)
                return r;
        r = image_discover_in(arg_root, image_class_info(arg_class)->search_dirs, &images, &n);
        if (r < 0)
                return r;
        r = list_open_entries(&host, images, n, &entries);
        if (r >= 0)
                r = list_print(entries, n, &(OutputMode) { .json = arg_json, .legend = arg_legend });
        for (size_t i = 0; entries && i < n; i++) {
                extension_free(entries[i].ext);
                free(entries[i].error);
        }
        free(entries);
        image_array_free(images, n);
        return r;
}

/* ---- dissect ---- */

static int verb_dissect(int argc, char **argv) {
        _cleanup_(host_info_done) HostInfo host = {};
        _cleanup_(extension_freep) Extension *e = NULL;
        Image *img = NULL;
        int r;

        r = image_from_path(argv[1], &img);
        if (r < 0)
                return r;
        /* Compatibility is judged against the root's os-release: without one (a --root that is not
         * an OS tree) dissect fails. */
        r = host_info_load(arg_root, &host);
        if (r < 0) {
                image_free(img);
                return r;
        }
        ExtensionOptions o = extension_options(&host, geteuid() == 0 && !arg_validate);
        o.report_policy = !arg_validate;
        r = extension_open(img, &o, &e);        /* takes over img, also on failure */
        if (r < 0)
                return r;
        return dissect_print(e, arg_image_policy, arg_validate, &(OutputMode) { .json = arg_json, .legend = arg_legend });
}

/* ---- merge, unmerge, refresh, status ---- */

static int verb_mutate(int argc, char **argv) {
        _cleanup_(context_done) MergeContext c = {};
        char **images = argc > 1 ? argv + 1 : NULL;
        int r;

        if (geteuid() != 0)
                return sx_error(-EPERM, "%s requires root privileges.", argv[0]);
        if (streq(argv[0], "unmerge") && argc > 1)
                return sx_error(-EINVAL, "unmerge takes no arguments.");
        r = make_context(&c, images);
        if (r < 0)
                return r;
        /* root of an unprivileged container: the host's broker mounts, we attach in our namespace */
        if (streq(argv[0], "merge") && merge_broker_in_container() > 0) {
                if (arg_broker_no)
                        return sx_error(-EINVAL, "--broker=no: merge as root of a user namespace needs the broker.");
                return merge_broker_extensions(&c, arg_broker, arg_image_policy_string);
        }
        if (streq(argv[0], "merge"))
                return merge_extensions(&c);
        if (streq(argv[0], "unmerge"))
                return unmerge_extensions(&c);
        return refresh_extensions(&c);
}

static int verb_run(int argc, char **argv) {
        _cleanup_strv_free_ char **hierarchies = NULL;
        int r, status = 0;

        if (arg_class != IMAGE_CLASS_SYSEXT)
                return sx_error(-EOPNOTSUPP, "run: only system extensions can be used (not --class=confext).");
        if (arg_root || arg_namespace_of)
                return sx_error(-EINVAL, "run: --root= and --namespace-of= do not apply; the command gets a namespace of its own.");
        if (arg_mutable_given)
                return sx_error(-EINVAL, "run: --mutable= does not apply; a command's extensions are never writable.");
        r = cli_hierarchies(&hierarchies);
        if (r < 0)
                return r;
        RunOptions o = {
                .images = arg_images,
                .n_images = arg_n_images,
                .discover = arg_discover,
                .private_users = arg_private_users,
                .user = arg_user,
                .idmap = arg_idmap,
                .policy = arg_image_policy,
                .verity_mode = arg_verity,
                .force = arg_force,
                .hierarchies = hierarchies,
                .argv = argv + 1,
                .notice = print_notice,
                .broker_policy = arg_image_policy_string,
        };
        /* an ordinary user always goes through the broker; root when it runs (run-broker.h) */
        if (arg_broker_no && geteuid() != 0)
                return sx_error(-EINVAL, "run: --broker=no: an ordinary user's run needs the broker.");
        if (!arg_broker_no) {
                r = run_broker_choose(&o, arg_broker, geteuid() == 0, &o.broker, &o.broker_optional);
                if (r < 0)
                        return r;
        }
        r = run_command(&o, &status);
        if (r < 0 && status > 0) {
                /* The command could not be executed: say why, exit as a shell would (126/127). */
                log_error_last(r);
                return status;
        }
        if (r < 0)
                return r;
        return status;  /* the command's exit status, passed through by main() */
}

static int verb_status(int argc, char **argv) {
        _cleanup_(context_done) MergeContext c = {};
        HierarchyStatus *s = NULL;
        size_t n = 0;
        int r;

        r = make_context(&c, NULL);
        if (r < 0)
                return r;
        r = status_hierarchies(&c, &s, &n);
        if (r < 0)
                return r;
        r = status_print(s, n, &(OutputMode) { .json = arg_json, .legend = arg_legend });
        hierarchy_status_free_many(s, n);
        return r;
}
/* ---- CLI ---- */

static void help(void) {
        const ImageClassInfo *cls = image_class_info(arg_class);

        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Merge %s into %s, each image an idmapped layer.\n\n"
               "Commands:\n"
               "  status                 Show current merge status (default)\n"
               "  list                   List discovered extension images\n"
               "  dissect IMAGE          Show partitions and extension-release of an image\n"
               "  merge [IMAGE...]       Merge extensions into %s\n"
               "  unmerge                Unmerge extensions from %s\n"
               "  refresh [IMAGE...]     Atomically replace the merge with the current extensions\n"
               "  run [OPTIONS] -- CMD...\n"
               "                         Run a command in a mount namespace of its own whose /usr/\n"
               "                         and /opt/ carry the extensions, idmapped into its user namespace\n\n"
               "Options:\n"
               "  -h --help              Show this help\n"
               "     --version           Show package version\n"
               "     --root=PATH         Operate relative to root path\n"
               "     --json=pretty|short|off\n"
               "                         Generate JSON output\n"
               "     --force             Ignore version incompatibilities\n"
               "     --no-reload         Do not reload the service manager\n"
               "     --no-pager          Accepted for systemd-sysext compatibility (never pages)\n"
               "     --no-legend         Do not show the table headers\n"
               "     --idmap=SPEC        Map ownership of every layer: identity, b|u|g:FROM:TO:COUNT,\n"
               "                         userns:PATH, pid:PID, foreign, user:NAME, or auto (each\n"
               "                         layer by its root directory's owner, or NAME.idmap)\n"
               "     --image-policy=POLICY\n"
               "                         Which partitions of an image may be used, and how protected\n"
               "     --verity=auto|kernel|userspace|off\n"
               "                         How verity data is checked (auto: kernel, else userspace)\n"
               "     --validate          dissect: check the image against the policy, do not mount\n"
               "     --namespace-of=PID  merge/unmerge/refresh/status in that process's mount\n"
               "                         namespace, idmapped into its user namespace\n"
               "     --mutable=no|yes|auto|import|ephemeral|ephemeral-import|help\n"
               "                         Writable merge on /var/lib/extensions.mutable/ (not idmapped)\n"
               "     --noexec=BOOL       Mount the merged hierarchies noexec\n"
               "     --always-refresh[=BOOL]\n"
               "                         refresh even if nothing changed\n"
               "     --class=sysext|confext\n"
               "                         System extensions (/usr/, /opt/) or configuration\n"
               "                         extensions (/etc/); confext-idmap is --class=confext\n"
               "     --debug             Show debug messages\n\n"
               "Options for run:\n"
               "     --image=[-]PATH[:PARTITION:OPTIONS]\n"
               "                         An extension image (repeatable), as ExtensionImages=\n"
               "     --discover          Also use the discovered extensions\n"
               "     --private-users=no|pick|subuid|INSIDE:OUTSIDE:COUNT|userns:PATH\n"
               "                         User namespace of the command; layers are idmapped into it\n"
               "                         (an ordinary user: own ids -> 0, or subuid: its /etc/subuid range)\n"
               "     --broker=PATH|no    The broker's socket (sysext-idmapd), for run, merge in a\n"
               "                         container and --namespace-of's shared layers\n"
               "                         (default " BROKER_SOCKET_DEFAULT "; no: never)\n"
               "     --user=NAME         Run as NAME, layers mapped user:NAME (nosuid,nodev)\n\n"
               "See the sysext-idmap(1) man page for details.\n",
               cls->program, cls->what, cls->where, cls->where, cls->where);
}

enum {
        ARG_VERSION = 0x100,
        ARG_ROOT,
        ARG_JSON,
        ARG_FORCE,
        ARG_NO_RELOAD,
        ARG_NO_PAGER,
        ARG_NO_LEGEND,
        ARG_IDMAP,
        ARG_DEBUG,
        ARG_NAMESPACE_OF,
        ARG_IMAGE_POLICY,
        ARG_VERITY,
        ARG_VALIDATE,
        ARG_IMAGE,
        ARG_DISCOVER,
        ARG_PRIVATE_USERS,
        ARG_USER,
        ARG_MUTABLE,
        ARG_NOEXEC,
        ARG_ALWAYS_REFRESH,
        ARG_CLASS,
        ARG_BROKER,
};

/* A boolean option's value, as systemd spells them; NULL (no value given) is yes. */
static int parse_bool_option(const char *name, const char *value, bool *ret) {
        static const char * const yes[] = { "1", "yes", "y", "true", "t", "on" }, * const no[] = { "0", "no", "n", "false", "f", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (!value || strcasecmp(value, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                } else if (strcasecmp(value, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        return sx_error(-EINVAL, "--%s=: '%s' is not a boolean (yes, no)", name, value);
}

/* "--root" for a long option's value, "-h" for a short one: how messages name an option. */
static const char *option_name(const struct option *options, int val) {
        static char buf[64];

        for (const struct option *o = options; o->name; o++)
                if (o->val == val) {
                        snprintf(buf, sizeof(buf), "--%s", o->name);
                        return buf;
                }
        snprintf(buf, sizeof(buf), "-%c", val);
        return buf;
}

static int parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "help",      no_argument,       NULL, 'h'           },
                { "version",   no_argument,       NULL, ARG_VERSION   },
                { "root",      required_argument, NULL, ARG_ROOT      },
                { "json",      required_argument, NULL, ARG_JSON      },
                { "force",     no_argument,       NULL, ARG_FORCE     },
                { "no-reload", no_argument,       NULL, ARG_NO_RELOAD },
                { "no-pager",  no_argument,       NULL, ARG_NO_PAGER  },
                { "no-legend", no_argument,       NULL, ARG_NO_LEGEND },
                { "idmap",     required_argument, NULL, ARG_IDMAP     },
                { "debug",     no_argument,       NULL, ARG_DEBUG     },
                { "namespace-of", required_argument, NULL, ARG_NAMESPACE_OF },
                { "image-policy", required_argument, NULL, ARG_IMAGE_POLICY },
                { "verity",    required_argument, NULL, ARG_VERITY    },
                { "validate",  no_argument,       NULL, ARG_VALIDATE  },
                { "image",     required_argument, NULL, ARG_IMAGE     },
                { "discover",  no_argument,       NULL, ARG_DISCOVER  },
                { "private-users", required_argument, NULL, ARG_PRIVATE_USERS },
                { "user",      required_argument, NULL, ARG_USER      },
                { "mutable",   required_argument, NULL, ARG_MUTABLE   },
                { "noexec",    required_argument, NULL, ARG_NOEXEC    },
                { "always-refresh", optional_argument, NULL, ARG_ALWAYS_REFRESH },
                { "class",     required_argument, NULL, ARG_CLASS     },
                { "broker",    required_argument, NULL, ARG_BROKER    },
                {}
        };
        int c;

        /* Leading ':': a missing value is ':' (not '?'), so it can be reported by the option's name. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sysext-idmap %s\n%ccryptsetup %copenssl %ctest-hooks\n", PROJECT_VERSION,
                               HAVE_LIBCRYPTSETUP ? '+' : '-', HAVE_OPENSSL ? '+' : '-',
                               SYSEXT_IDMAP_TEST_HOOKS ? '+' : '-');
                        return 0;
                case ARG_ROOT:
                        if (!path_is_absolute(optarg) && !startswith(optarg, "."))
                                return sx_error(-EINVAL, "--root=: '%s' is not a path", optarg);
                        arg_root = optarg;
                        break;
                case ARG_JSON:
                        if (streq(optarg, "pretty"))
                                arg_json = JSON_PRETTY;
                        else if (streq(optarg, "short"))
                                arg_json = JSON_SHORT;
                        else if (streq(optarg, "off"))
                                arg_json = JSON_OFF;
                        else
                                return sx_error(-EINVAL, "--json=: unknown mode '%s' (pretty, short, off)", optarg);
                        break;
                case ARG_FORCE:
                        arg_force = true;
                        break;
                case ARG_NO_RELOAD:
                        arg_no_reload = true;
                        break;
                case ARG_NO_PAGER:
                        /* Accepted as systemd-sysext does; the output never goes through a pager. */
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_IDMAP: {
                        Idmap *m = NULL;
                        int r = idmap_parse(optarg, &m);
                        if (r < 0)
                                return r;
                        idmap_free(arg_idmap);
                        arg_idmap = m;
                        break;
                }
                case ARG_DEBUG:
                        sx_debug_enabled = true;
                        break;
                case ARG_IMAGE_POLICY: {
                        ImagePolicy *p = NULL;
                        int r = image_policy_from_string(optarg, &p);
                        if (r < 0)
                                return r;
                        image_policy_free(arg_image_policy);
                        arg_image_policy = p;
                        arg_image_policy_string = optarg;
                        break;
                }
                case ARG_VERITY:
                        arg_verity = verity_mode_from_string(optarg);
                        if (arg_verity < 0)
                                return sx_error(-EINVAL, "--verity=: unknown mode '%s' (auto, kernel, userspace, off)", optarg);
                        break;
                case ARG_VALIDATE:
                        arg_validate = true;
                        break;
                case ARG_IMAGE: {
                        ImageArg *a = reallocarray(arg_images, arg_n_images + 1, sizeof(ImageArg));
                        if (!a)
                                return -ENOMEM;
                        arg_images = a;
                        int r = image_arg_parse(optarg, &arg_images[arg_n_images]);
                        if (r < 0)
                                return r;
                        arg_n_images++;
                        break;
                }
                case ARG_DISCOVER:
                        arg_discover = true;
                        break;
                case ARG_PRIVATE_USERS: {
                        int r;
                        private_users_done(&arg_private_users);
                        r = private_users_parse(optarg, &arg_private_users);
                        if (r < 0)
                                return r;
                        break;
                }
                case ARG_USER:
                        arg_user = optarg;
                        break;
                case ARG_MUTABLE:
                        if (streq(optarg, "help")) {
                                puts("Known mutability modes:");
                                for (MutableMode m = 0; m < _MUTABLE_MODE_MAX; m++)
                                        puts(mutable_mode_to_string(m));
                                return 0;
                        }
                        arg_mutable = mutable_mode_from_string(optarg);
                        arg_mutable_given = true;
                        if (arg_mutable < 0)
                                return sx_error(-EINVAL, "--mutable=: unknown mode '%s' (see --mutable=help)", optarg);
                        break;
                case ARG_NOEXEC: {
                        int b = parse_boolean(optarg);
                        if (b < 0)
                                return sx_error(-EINVAL, "--noexec=: '%s' is not a boolean", optarg);
                        arg_noexec = b ? NOEXEC_YES : NOEXEC_NO;
                        break;
                }
                case ARG_ALWAYS_REFRESH: {
                        int r = parse_bool_option("always-refresh", optarg, &arg_always_refresh);
                        if (r < 0)
                                return r;
                        break;
                }
                case ARG_CLASS:
                        arg_class = image_class_from_string(optarg);
                        if (arg_class < 0)
                                return sx_error(-EINVAL, "--class=: unknown image class '%s' (sysext, confext)", optarg);
                        break;
                case ARG_BROKER:
                        arg_broker_no = streq(optarg, "no");
                        if (!arg_broker_no && !path_is_absolute(optarg))
                                return sx_error(-EINVAL, "--broker=: '%s' is neither an absolute path nor 'no'", optarg);
                        arg_broker = arg_broker_no ? NULL : optarg;
                        break;
                case ARG_NAMESPACE_OF: {
                        uint32_t pid;
                        if (idmap_parse_number(optarg, &pid) < 0 || pid == 0 || pid > INT32_MAX)
                                return sx_error(-EINVAL, "--namespace-of=: '%s' is not a valid PID", optarg);
                        arg_namespace_of = (pid_t) pid;
                        break;
                }
                case ':':
                        return sx_error(-EINVAL, "Option '%s' needs an argument.", option_name(options, optopt));
                case '?':
                        if (optopt >= ARG_VERSION)      /* a long option without a value given one */
                                return sx_error(-EINVAL, "Option '%s' takes no argument.", option_name(options, optopt));
                        if (optopt)
                                return sx_error(-EINVAL, "Unknown option '-%c'. Try --help.", optopt);
                        return sx_error(-EINVAL, "Unknown option '%s'. Try --help.", argv[optind - 1]);
                default:        /* getopt_long() returns only the table's values, ':' and '?' */
                        assert(false);
                        return -EINVAL;
                }
        return 1;
}

/* A class's own default image policy, unless --image-policy= named one. */
static int class_default_policy(void) {
        const char *p = image_class_info(arg_class)->default_image_policy;

        if (arg_image_policy || !p)
                return 1;
        int r = image_policy_from_string(p, &arg_image_policy);
        return r < 0 ? r : 1;
}

typedef struct Verb {
        const char *name;
        int min_args, max_args;         /* including the verb itself; -1 = unlimited */
        int (*run)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "status",  1,  1, verb_status  },
        { "list",    1,  1, verb_list    },
        { "dissect", 2,  2, verb_dissect },
        { "merge",   1, -1, verb_mutate  },
        { "unmerge", 1,  1, verb_mutate  },
        { "refresh", 1, -1, verb_mutate  },
        { "run",     2, -1, verb_run     },
};

static int dispatch_verb(int argc, char **argv) {
        char *default_argv[] = { (char *) "status", NULL };

        if (argc == 0) {
                argc = 1;
                argv = default_argv;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (!streq(verbs[i].name, argv[0]))
                        continue;
                if (argc < verbs[i].min_args)
                        return sx_error(-EINVAL, "%s: missing argument. Try --help.", argv[0]);
                if (verbs[i].max_args >= 0 && argc > verbs[i].max_args)
                        return sx_error(-E2BIG, "%s: too many arguments. Try --help.", argv[0]);
                return verbs[i].run(argc, argv);
        }
        return sx_error(-EINVAL, "Unknown command '%s'. Try --help.", argv[0]);
}

int main(int argc, char **argv) {
        const char *d = secure_getenv("SYSEXT_IDMAP_DEBUG");
        int r;

#if SYSEXT_IDMAP_TEST_HOOKS
        test_hooks_from_environment();
#endif
        if (d && (streq(d, "1") || streq(d, "yes") || streq(d, "true")))
                sx_debug_enabled = true;
        /* As systemd-confext is systemd-sysext under another name. */
        arg_class = image_class_from_program(argv[0]);
        r = parse_argv(argc, argv);
        if (r > 0)
                r = class_default_policy();
        if (r <= 0) {
                if (r < 0)
                        log_error_last(r);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        sx_clear_error();
        r = cli_config();
        if (r >= 0)
                r = dispatch_verb(argc - optind, argv + optind);
        arg_idmap = idmap_free(arg_idmap);
        arg_image_policy = image_policy_free(arg_image_policy);
        for (size_t i = 0; i < arg_n_images; i++)
                image_arg_done(&arg_images[i]);
        free(arg_images);
        private_users_done(&arg_private_users);
        if (r < 0) {
                log_error_last(r);
                return EXIT_FAILURE;
        }
        return r > 255 ? 255 : r;       /* run: the command's status; every other verb: 0 */
}
