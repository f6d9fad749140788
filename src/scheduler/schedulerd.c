/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>

#include "conf.h"
#include "log.h"
#include "scheduler-manager.h"

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        FlConfig config;
        sigset_t mask;
        int r;

        log_set_ident("fl-schedulerd");
        (void) log_set_field("FL_ROLE", "SCHEDULER");
        if (conf_init(&config) < 0)
                return log_oom(), EXIT_FAILURE;

        r = conf_parse_argv(&config, argc, argv, CONF_ROLE_SCHEDULER, "fl-schedulerd",
                            "The flcluster scheduler: registers servers, assigns ranks, watches their heartbeats\n"
                            "and serves the management API over REST and D-Bus.");
        if (r != 0) {
                conf_done(&config);
                return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        r = manager_new(&m, &config);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the scheduler: %m");
                goto finish;
        }
        r = manager_start(m);
        if (r < 0)
                goto finish;
        r = manager_run(m);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");

finish:
        m = manager_free(m);
        conf_done(&config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
