/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>

#include "log.h"
#include "server-children.h"
#include "util.h"
#include "wire-protocol.h"

/* A server that died is started again after this, doubled while it keeps
 * dying within RESTART_STABLE_USEC of its start. */
#define RESTART_FIRST_USEC (100U * USEC_PER_MSEC)
#define RESTART_MAX_USEC (10U * USEC_PER_SEC)
#define RESTART_STABLE_USEC (10U * USEC_PER_SEC)

typedef struct Children Children;

typedef struct Child {
        Children *all;
        unsigned index;
        uint16_t port;
        pid_t pid;
        sd_event_source *source;
        sd_event_source *restart_timer;
        uint64_t started_usec;
        uint64_t backoff_usec;
        bool running;
} Child;

struct Children {
        sd_event *event;
        const FlConfig *config;
        server_child_main_t child_main;
        Child *children;
        unsigned n, n_running;
        sd_event_source *kill_timer;
        bool stopping;
        bool failed;
};

static int child_start(Children *all, Child *ch);
static int child_watch(Children *all, Child *ch);

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata) {
        Child *ch = userdata;
        Children *all = ch->all;
        int r;

        ch->restart_timer = sd_event_source_disable_unref(ch->restart_timer);
        if (all->stopping)
                return 0;
        r = child_start(all, ch);
        if (r >= 0)
                r = child_watch(all, ch);
        if (r < 0) {
                log_error_errno(r, "Failed to start server %u on port %u again: %m", ch->index, ch->port);
                all->failed = true;
                if (all->n_running == 0)
                        (void) sd_event_exit(all->event, 0);
                return 0;
        }
        log_notice("Started server %u on port %u again (pid %d).", ch->index, ch->port, ch->pid);
        return 0;
}

/* A server that crashed comes back at once (its update log and checkpoints
 * bring it back where it was); one that finished, or was refused for good,
 * does not. */
static bool child_schedule_restart(Children *all, Child *ch, const siginfo_t *si) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), delay;

        if (all->stopping || (si->si_code == CLD_EXITED && IN_SET(si->si_status, 0, FL_EXIT_REFUSED)))
                return false;
        if (now - ch->started_usec >= RESTART_STABLE_USEC)
                ch->backoff_usec = 0;
        delay = ch->backoff_usec = ch->backoff_usec == 0 ? RESTART_FIRST_USEC : MIN(ch->backoff_usec * 2,
                                                                                    (uint64_t) RESTART_MAX_USEC);
        if (sd_event_add_time_relative(all->event, &ch->restart_timer, CLOCK_MONOTONIC, delay, 0, on_restart,
                                       ch) < 0)
                return false;
        log_notice("Starting server %u on port %u again in %" PRIu64 " ms.", ch->index, ch->port,
                   delay / USEC_PER_MSEC);
        return true;
}

static bool children_restarting(const Children *all) {
        for (unsigned i = 0; i < all->n; i++)
                if (all->children[i].restart_timer)
                        return true;
        return false;
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Child *ch = userdata;
        Children *all = ch->all;

        if (si->si_code == CLD_EXITED && si->si_status == 0)
                log_info("Server %u on port %u (pid %d) exited with status 0.", ch->index, ch->port, ch->pid);
        else {
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
        all->n_running--;
        if (child_schedule_restart(all, ch, si))
                return 0;
        if (si->si_code != CLD_EXITED || si->si_status != 0)
                all->failed = true;
        if (all->n_running == 0 && !children_restarting(all))
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
        all->stopping = true;
        for (unsigned i = 0; i < all->n; i++)
                all->children[i].restart_timer = sd_event_source_disable_unref(all->children[i].restart_timer);
        if (all->n_running == 0) {
                (void) sd_event_exit(all->event, 0);
                return;
        }
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

/* systemctl reload reaches the launcher only: every server reloads. */
static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Children *all = userdata;

        log_info("Received SIGHUP: passing it on to %u servers.", all->n_running);
        children_signal(all, SIGHUP);
        return 0;
}

static int child_start(Children *all, Child *ch) {
        pid_t parent = getpid(), pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                /* Do not outlive the launcher (it may be SIGKILLed). */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(EXIT_FAILURE);
                exit(all->child_main(all->config, ch->index));
        }
        ch->pid = pid;
        ch->running = true;
        ch->started_usec = now_usec(CLOCK_MONOTONIC);
        all->n_running++;
        return 0;
}

static int child_watch(Children *all, Child *ch) {
        return sd_event_add_child(all->event, &ch->source, ch->pid, WEXITED, on_child_exit, ch);
}

static int children_fork(Children *all, const FlConfig *c) {
        for (unsigned i = 0; i < c->local_server_num; i++) {
                Child *ch = &all->children[i];
                int r;

                *ch = (Child) {
                        .all = all,
                        .index = i,
                        .port = (uint16_t) (c->fl_server_port + i),
                };
                r = child_start(all, ch);
                if (r < 0)
                        return log_error_errno(r, "Failed to start server %u: %m", i);
                all->n++;
        }
        return 0;
}

int server_children_run(const FlConfig *c, server_child_main_t child_main) {
        Children all = {
                .config = c,
                .child_main = child_main,
        };
        int r, k;

        all.children = calloc(c->local_server_num, sizeof *all.children);
        if (!all.children)
                return log_oom(), EXIT_FAILURE;

        log_info("Starting %u servers on ports %u-%u.", c->local_server_num, c->fl_server_port,
                 c->fl_server_port + c->local_server_num - 1);
        k = children_fork(&all, c);

        /* After the forks: the children must not share this loop. */
        r = sd_event_new(&all.event);
        if (r >= 0)
                r = sd_event_add_signal(all.event, NULL, SIGTERM, on_signal, &all);
        if (r >= 0)
                r = sd_event_add_signal(all.event, NULL, SIGINT, on_signal, &all);
        if (r >= 0)
                r = sd_event_add_signal(all.event, NULL, SIGHUP, on_reload_signal, &all);
        for (unsigned i = 0; r >= 0 && i < all.n; i++)
                r = child_watch(&all, &all.children[i]);
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

        for (unsigned i = 0; i < all.n; i++) {
                sd_event_source_disable_unref(all.children[i].source);
                sd_event_source_disable_unref(all.children[i].restart_timer);
        }
        sd_event_source_disable_unref(all.kill_timer);
        sd_event_unref(all.event);
        free(all.children);
        return all.failed || k < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
