/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <systemd/sd-bus.h>

#include "dlopen-util.h"
#include "reload.h"

#define MANAGER_PRIVATE_SOCKET "/run/systemd/private"
/* Loaded only when a reload is due (dlopen-util.h); Debian 12's soname. */
#define LIBSYSTEMD_SONAME "libsystemd.so.0"

static void *libsystemd_dl;
static typeof(sd_bus_call_method) *sym_sd_bus_call_method;
static typeof(sd_bus_error_free) *sym_sd_bus_error_free;
static typeof(sd_bus_flush_close_unref) *sym_sd_bus_flush_close_unref;
static typeof(sd_bus_new) *sym_sd_bus_new;
static typeof(sd_bus_open_system) *sym_sd_bus_open_system;
static typeof(sd_bus_set_address) *sym_sd_bus_set_address;
static typeof(sd_bus_start) *sym_sd_bus_start;

static const DlopenSymbol libsystemd_symbols[] = {
        DLSYM(sd_bus_call_method),
        DLSYM(sd_bus_error_free),
        DLSYM(sd_bus_flush_close_unref),
        DLSYM(sd_bus_new),
        DLSYM(sd_bus_open_system),
        DLSYM(sd_bus_set_address),
        DLSYM(sd_bus_start),
};

/* No system bus (no systemd as PID 1, a container, early boot): nothing to reload, say nothing. */
static bool bus_absent(int r) {
        return r == -ENOENT || r == -ECONNREFUSED || r == -ENOMEDIUM || r == -EHOSTDOWN || r == -ENOTCONN;
}

static int bus_open_private(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sym_sd_bus_new(&bus);
        if (r >= 0)
                r = sym_sd_bus_set_address(bus, "unix:path=" MANAGER_PRIVATE_SOCKET);
        if (r >= 0)
                r = sym_sd_bus_start(bus);
        if (r < 0) {
                sym_sd_bus_flush_close_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

int service_manager_reload_prepare(void) {
        return dlopen_many(&libsystemd_dl, LIBSYSTEMD_SONAME, "to reload the service manager", libsystemd_symbols,
                           ELEMENTSOF(libsystemd_symbols));
}

int service_manager_reload(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        r = service_manager_reload_prepare();
        if (r < 0)
                return r;
        r = -ENOENT;
        if (geteuid() == 0 && access(MANAGER_PRIVATE_SOCKET, F_OK) >= 0)
                r = bus_open_private(&bus);
        if (r < 0)
                r = sym_sd_bus_open_system(&bus);
        if (r >= 0)
                r = sym_sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "Reload", &error, NULL, NULL);
        if (r < 0 && !bus_absent(r))
                r = error.message ? sx_error(r, "Failed to reload the service manager: %s", error.message)
                                  : sx_error(r, "Failed to reload the service manager: %m");
        else
                r = r >= 0;
        sym_sd_bus_error_free(&error);
        sym_sd_bus_flush_close_unref(bus);
        return r;
}
