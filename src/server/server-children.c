/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "server-children.h"

typedef struct Children Children;

typedef struct Child {
        Children *all;
        unsigned index;
        uint16_t port;
        pid_t pid;
        sd_event_source *source;
        bool running;
} Child;

struct Children {
        sd_event *event;
        Child *children;
        unsigned n, n_running;
        sd_event_source *kill_timer;
        bool failed;
};

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Child *ch = userdata;
        Children *all = ch->all;

        if (si->si_code == CLD_EXITED && si->si_status == 0)
                log_info("Server %u on port %u (pid %d) exited with status 0.", ch->index, ch->port, ch->pid);
        else {
                all->failed = true;
                if (si->si_code == CLD_EXITED)
                        log_warning("Server %u on port %u (pid %d) exited with status %d.", ch->index, ch->port,
                                    ch->pid, si->si_status);
                else
                        log_warning("Server %u on port %u (pid %d) was killed by SIG%s%s.", ch->index, ch->port,
                                    ch->pid, strna(sigabbrev_np(si->si_status)),
                                    si->si_code == CLD_DUMPED ? " and dumped core" : "");
        }
        ch->running = false;
        ch->source = sd_event_source_disable_unref(ch->source);
        if (--all->n_running == 0)
                (void) sd_event_exit(all->event, 0);
        return 0;
}

static void children_signal(Children *all, int sig) {
        for (unsigned i = 0; i < all->n; i++)
                if (all->children[i].running && kill(all->children[i].pid, sig) < 0 && errno != ESRCH)
                        log_warning_errno(negative_errno(), "Failed to send SIG%s to server %u (pid %d): %m",
                                          sigabbrev_np(sig), all->children[i].index, all->children[i].pid);
}

static int on_kill_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Children *all = userdata;

        for (unsigned i = 0; i < all->n; i++)
                if (all->children[i].running)
                        log_warning("Server %u on port %u (pid %d) did not stop in time; killing it.",
                                    all->children[i].index, all->children[i].port, all->children[i].pid);
        children_signal(all, SIGKILL);
        return 0;
}

static void children_stop(Children *all, int sig) {
        children_signal(all, sig);
        if (all->kill_timer)
                return;
        /* The servers stop at once on SIGTERM; this only bounds a stuck one. */
        if (sd_event_add_time_relative(all->event, &all->kill_timer, CLOCK_MONOTONIC,
                                       SERVER_CHILDREN_STOP_TIMEOUT_USEC, 0, on_kill_timeout, all) < 0)
                children_signal(all, SIGKILL);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Children *all = userdata;

        log_info("Received SIG%s, stopping %u servers.", sigabbrev_np((int) si->ssi_signo), all->n_running);
        children_stop(all, (int) si->ssi_signo);
        return 0;
}

static int children_fork(Children *all, const FlConfig *c, server_child_main_t child_main) {
        pid_t parent = getpid();

        for (unsigned i = 0; i < c->local_server_num; i++) {
                Child *ch = &all->children[i];
                pid_t pid;

                fflush(NULL);
                pid = fork();
                if (pid < 0)
                        return log_error_errno(negative_errno(), "Failed to start server %u: %m", i);
                if (pid == 0) {
                        /* Do not outlive the launcher (it may be SIGKILLed). */
                        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                                _exit(EXIT_FAILURE);
                        exit(child_main(c, i));
                }
                *ch = (Child) {
                        .all = all,
                        .index = i,
                        .port = (uint16_t) (c->fl_server_port + i),
                        .pid = pid,
                        .running = true,
                };
                all->n++;
                all->n_running++;
        }
        return 0;
}

int server_children_run(const FlConfig *c, server_child_main_t child_main) {
        Children all = {};
        int r, k;

        all.children = calloc(c->local_server_num, sizeof *all.children);
        if (!all.children)
                return log_oom(), EXIT_FAILURE;

        log_info("Starting %u servers on ports %u-%u.", c->local_server_num, c->fl_server_port,
                 c->fl_server_port + c->local_server_num - 1);
        k = children_fork(&all, c, child_main);

        /* After the forks: the children must not share this loop. */
        r = sd_event_new(&all.event);
        if (r >= 0)
                r = sd_event_add_signal(all.event, NULL, SIGTERM, on_signal, &all);
        if (r >= 0)
                r = sd_event_add_signal(all.event, NULL, SIGINT, on_signal, &all);
        for (unsigned i = 0; r >= 0 && i < all.n; i++)
                r = sd_event_add_child(all.event, &all.children[i].source, all.children[i].pid, WEXITED,
                                       on_child_exit, &all.children[i]);
        if (r < 0) {
                log_error_errno(r, "Failed to watch the servers: %m");
                children_signal(&all, SIGKILL);
                for (unsigned i = 0; i < all.n; i++)
                        (void) waitpid(all.children[i].pid, NULL, 0);
                all.failed = true;
        } else {
                if (k < 0)
                        children_stop(&all, SIGTERM);
                if (all.n_running > 0)
                        (void) sd_event_loop(all.event);
        }

        for (unsigned i = 0; i < all.n; i++)
                sd_event_source_disable_unref(all.children[i].source);
        sd_event_source_disable_unref(all.kill_timer);
        sd_event_unref(all.event);
        free(all.children);
        return all.failed || k < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
