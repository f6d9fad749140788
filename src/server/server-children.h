/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "conf.h"

/* --local_server_num=N: N child processes, child i serving port
 * fl_server_port+i. A child that dies (killed, or a non-zero exit other than
 * FL_EXIT_REFUSED) is started again at once, with a back-off while it keeps
 * dying; one that exits 0 (finish, scale-in) stays gone. The parent
 * forwards SIGTERM and SIGINT, waits for every child (and kills those that
 * outlast the stop timeout), logs how each one ended, and returns
 * EXIT_SUCCESS iff all exited 0. SIGTERM, SIGINT and SIGCHLD must be blocked
 * by the caller. */

typedef int (*server_child_main_t)(const FlConfig *c, unsigned index);

#define SERVER_CHILDREN_STOP_TIMEOUT_USEC (20U * USEC_PER_SEC)

int server_children_run(const FlConfig *c, server_child_main_t child_main);
