/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>

#include "conf.h"
#include "log.h"
#include "server-children.h"
#include "server-manager.h"

static int server_main(const FlConfig *c, unsigned index) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        r = manager_new(&m, c, index);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the server: %m"), EXIT_FAILURE;
        if (manager_start(m) < 0)
                return EXIT_FAILURE;
        return manager_run(m);
}

int main(int argc, char *argv[]) {
        _cleanup_(conf_done) FlConfig c = {};
        sigset_t mask;
        int r;

        log_set_ident("fl-serverd");
        if (conf_init(&c) < 0)
                return log_oom(), EXIT_FAILURE;
        r = conf_parse_argv(&c, argc, argv, CONF_ROLE_SERVER, "fl-serverd",
                            "Serve the devices of a federated-learning cluster.");
        if (r != 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (c.fl_server_port + c.local_server_num - 1 > UINT16_MAX) {
                log_error("The ports %u-%u do not all exist; lower fl_server_port or local_server_num.",
                          c.fl_server_port, c.fl_server_port + c.local_server_num - 1);
                return EXIT_FAILURE;
        }

        /* Before any fork, so that no signal is lost between start and the loops. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(negative_errno(), "Failed to block signals: %m"), EXIT_FAILURE;

        if (c.local_server_num == 1)
                return server_main(&c, 0);
        return server_children_run(&c, server_main);
}
