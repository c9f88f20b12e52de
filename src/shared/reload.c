/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <systemd/sd-bus.h>

#include "reload.h"
#include "util.h"

#define MANAGER_PRIVATE_SOCKET "/run/systemd/private"

/* No system bus (no systemd as PID 1, a container, early boot): nothing to reload, say nothing. */
static bool bus_absent(int r) {
        return r == -ENOENT || r == -ECONNREFUSED || r == -ENOMEDIUM || r == -EHOSTDOWN || r == -ENOTCONN;
}

static int bus_open_private(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, "unix:path=" MANAGER_PRIVATE_SOCKET);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

int service_manager_reload(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r = -ENOENT;

        if (geteuid() == 0 && access(MANAGER_PRIVATE_SOCKET, F_OK) >= 0)
                r = bus_open_private(&bus);
        if (r < 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "Reload", &error, NULL, NULL);
        if (r < 0 && !bus_absent(r))
                r = error.message ? sx_error(r, "Failed to reload the service manager: %s", error.message)
                                  : sx_error(r, "Failed to reload the service manager: %m");
        else
                r = r >= 0;
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return r;
}
