/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "client-device.h"
#include "client-pool.h"
#include "client-progress.h"
#include "client-run.h"
#include "fl-messages.h"
#include "fl-model-io.h"
#include "lenet5.h"
#include "log.h"
#include "rng.h"
#include "util.h"

/* The test set is evaluated in this many slices, whatever --threads is, so
 * that the loss is summed in the same order every time. */
#define EVAL_SLICES 20
#define POLL_BACKOFF_FIRST_USEC (20 * USEC_PER_MSEC)
#define POLL_BACKOFF_MAX_USEC (1 * USEC_PER_SEC)
#define REQUEST_TIMEOUT_USEC (60 * USEC_PER_SEC)
/* Answers with an older model that make an iteration count as abandoned. */
#define STALE_ANSWERS 3
#define PROGRESS_INTERVAL_USEC (200 * USEC_PER_MSEC)

typedef struct Run {
        const RunOptions *o;
        Dataset *train, *test;
        Partition *partition;
        Device *devices;
        Pool *pool;
        ClientHttp **http;              /* one per worker */
        ClientHttp *driver;             /* getModel, from the main thread */
        DeviceContext ctx;
        FILE *csv;
        bool printed_header;
        Progress progress;              /* the live line on a terminal */
        size_t selected;                /* devices training in this iteration */
        atomic_size_t trained;

        /* Partial participation (client-run.h): the order devices ask in this
         * round, the ones asking now, and how many were admitted last time. */
        uint64_t round;
        uint64_t examples;              /* the accepted updates' data_size, summed */
        uint32_t *order;
        const uint32_t *asking;
        size_t n_asking;
        size_t admitted_last;

        /* The evaluation in flight. */
        const Model *eval_model;
        double eval_accuracy[EVAL_SLICES], eval_loss[EVAL_SLICES];
        size_t eval_n[EVAL_SLICES];
} Run;

static void run_done(Run *run) {
        progress_clear(&run->progress);
        if (run->csv)
                (void) fclose(run->csv);
        pool_free(run->pool);   /* joins the workers before their handles go */
        if (run->http)
                for (size_t i = 0; i < run->o->threads; i++)
                        client_http_free(run->http[i]);
        free(run->http);
        client_http_free(run->driver);
        model_cache_done(&run->ctx.cache);
        free(run->order);
        free(run->devices);
        partition_free(run->partition);
        dataset_free(run->train);
        dataset_free(run->test);
}

/* ---------------------------------------------------------------- setup */

static int run_setup(Run *run) {
        const RunOptions *o = run->o;
        uint32_t tag;
        int r;

        r = fashion_mnist_load(&run->train, o->data_dir, FASHION_MNIST_TRAIN);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Fashion-MNIST training set from %s: %m", o->data_dir);
        r = fashion_mnist_load(&run->test, o->data_dir, FASHION_MNIST_TEST);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Fashion-MNIST test set from %s: %m", o->data_dir);
        if (o->n_devices > run->train->n)
                return log_error_errno(-EINVAL, "%zu devices for %zu training images: at most one device per image.",
                                       o->n_devices, run->train->n);
        r = partition_new(&run->partition, &o->partition, run->train->labels, run->train->n,
                          FASHION_MNIST_CLASSES, o->n_devices, o->seed);
        if (r < 0)
                return log_error_errno(r, "Failed to split the training set among %zu devices: %m", o->n_devices);

        /* fl_ids differ between runs, so that two runs against one cluster
         * are different devices; nothing computed depends on them. */
        if (getrandom(&tag, sizeof tag, 0) != (ssize_t) sizeof tag)
                tag = (uint32_t) (now_usec(CLOCK_REALTIME) ^ (uint64_t) getpid());
        run->devices = calloc(o->n_devices, sizeof(Device));
        run->order = calloc(o->n_devices, sizeof(uint32_t));
        if (!run->devices || !run->order)
                return log_oom();
        for (size_t k = 0; k < o->n_devices; k++) {
                Device *d = run->devices + k;

                d->index = k;
                snprintf(d->fl_id, sizeof d->fl_id, "fl-client-%08" PRIx32 "-%zu", tag, k);
                d->examples = partition_device(run->partition, k, &d->n_examples);
        }

        progress_init(&run->progress, stdout);
        run->ctx = (DeviceContext) {
                .servers = &o->servers,
                .fl_name = o->fl_name,
                .train = run->train,
                .seed = o->seed,
                .momentum = o->momentum,
                .timeout_usec = o->timeout_usec,
                .last_iteration = -1,
        };
        model_cache_init(&run->ctx.cache);

        run->http = calloc(o->threads, sizeof(ClientHttp *));
        if (!run->http)
                return log_oom();
        for (size_t i = 0; i < o->threads; i++) {
                r = client_http_new(&run->http[i], REQUEST_TIMEOUT_USEC, o->timeout_usec);
                if (r >= 0 && o->cacert)
                        r = client_http_set_cacert(run->http[i], o->cacert);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up libcurl: %m");
        }
        r = client_http_new(&run->driver, REQUEST_TIMEOUT_USEC, o->timeout_usec);
        if (r >= 0 && o->cacert)
                r = client_http_set_cacert(run->driver, o->cacert);
        if (r < 0)
                return log_error_errno(r, "Failed to set up libcurl: %m");
        r = pool_new(&run->pool, o->threads);
        if (r < 0)
                return log_error_errno(r, "Failed to start %zu threads: %m", o->threads);

        if (o->csv_path) {
                struct stat st;

                run->csv = fopen(o->csv_path, "ae");
                if (!run->csv)
                        return log_error_errno(negative_errno(), "Failed to open %s: %m", o->csv_path);
                if (fstat(fileno(run->csv), &st) < 0)
                        return log_error_errno(negative_errno(), "Failed to stat %s: %m", o->csv_path);
                if (st.st_size == 0)
                        fputs("iteration,devices,test_accuracy,test_loss,seconds,participants\n", run->csv);
        }
        return 0;
}

/* ---------------------------------------------------------------- tasks */

static int task_start(void *userdata, size_t k, size_t worker) {
        Run *run = userdata;

        return device_start_fl_job(run->devices + run->asking[k], &run->ctx, run->http[worker]);
}

static int task_update(void *userdata, size_t k, size_t worker) {
        Run *run = userdata;
        bool selected = run->devices[k].state == DEVICE_SELECTED;
        int r;

        r = device_train_and_update(run->devices + k, &run->ctx, run->http[worker]);
        if (selected)
                atomic_fetch_add(&run->trained, 1);
        return r;
}

static void tick_admit(void *userdata, size_t done, size_t n) {
        Run *run = userdata;

        /* Of all the devices: those of the batches before this one have asked. */
        progress_show(&run->progress, "asking to join", (size_t) (run->asking - run->order) + done, run->o->n_devices);
}

static void tick_train(void *userdata, size_t done, size_t n) {
        Run *run = userdata;

        progress_show(&run->progress, "training", atomic_load(&run->trained), run->selected);
}

static void tick_evaluate(void *userdata, size_t done, size_t n) {
        progress_show(&((Run *) userdata)->progress, "evaluating the model", 0, 0);
}

static int task_evaluate(void *userdata, size_t slice, size_t worker) {
        Run *run = userdata;
        size_t n = run->test->n, from = n * slice / EVAL_SLICES, to = n * (slice + 1) / EVAL_SLICES;
        /* A view of the slice: model_evaluate() only reads. */
        Dataset view = {
                .n = to - from,
                .images = run->test->images + from * FASHION_MNIST_PIXELS,
                .labels = run->test->labels + from,
        };

        run->eval_n[slice] = view.n;
        if (view.n == 0)
                return 0;
        return model_evaluate(run->eval_model, &view, &run->eval_accuracy[slice], &run->eval_loss[slice]);
}

static int evaluate(Run *run, const Model *m, double *ret_accuracy, double *ret_loss) {
        double correct = 0, loss = 0;
        int r;

        run->eval_model = m;
        r = pool_run_ticking(run->pool, EVAL_SLICES, task_evaluate, run, tick_evaluate, run, PROGRESS_INTERVAL_USEC);
        run->eval_model = NULL;
        if (r < 0)
                return r;
        for (size_t i = 0; i < EVAL_SLICES; i++) {
                correct += round(run->eval_accuracy[i] * (double) run->eval_n[i]);
                loss += run->eval_loss[i] * (double) run->eval_n[i];
        }
        *ret_accuracy = correct / (double) run->test->n;
        *ret_loss = loss / (double) run->test->n;
        return 0;
}

/* ---------------------------------------------------------------- getModel */

/* Polls getModel until the model that ends `iteration` is served. A server
 * still in that iteration answers SucNotReady; one that answers SUCCEED
 * with an older model has moved on without a new one: the iteration was
 * abandoned (a time window expired), which *ret_abandoned says once a few
 * answers agree. */
static int fetch_model(Run *run, int32_t iteration, Model **ret, bool *ret_abandoned) {
        const RunOptions *o = run->o;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + o->timeout_usec, backoff = POLL_BACKOFF_FIRST_USEC;
        size_t server = (size_t) (uint32_t) iteration % o->servers.n;
        char ts[24], why[FL_REASON_MAX], reason[256];
        unsigned stale = 0;
        int r;

        for (;;) {
                _cleanup_(fl_response_get_model_done) FlResponseGetModel resp = {};
                _cleanup_(http_reply_done) HttpReply reply = {};
                _cleanup_free_ uint8_t *body = NULL;
                const char *url;
                uint64_t wait;
                size_t size;

                snprintf(ts, sizeof ts, "%" PRIu64, now_msec_realtime());
                r = fl_request_get_model_encode(&(FlRequestGetModel) {
                                .fl_name = o->fl_name,
                                .iteration = iteration,
                                .timestamp = ts,
                        }, &body, &size);
                if (r < 0)
                        return log_error_errno(r, "Failed to encode getModel: %m");

                progress_show(&run->progress, "waiting for the model", 0, 0);
                r = client_http_round(run->driver, &o->servers, server, "getModel", body, size, &reply);
                if (r == -ESHUTDOWN)
                        return log_error_errno(r, "The job ended before the model of iteration %" PRIi32
                                               " was served.", iteration);
                if (r < 0)
                        return log_error_errno(r, "getModel failed: %s", client_http_error(run->driver));
                server = reply.server;
                url = o->servers.urls[server];

                r = fl_response_get_model_decode(reply.body, reply.size, &resp, why);
                if (r < 0)
                        return log_error_errno(r, "%s answered getModel with a buffer that is not a "
                                               "ResponseGetModel: %s", url, why);

                if (resp.retcode == FL_SUCCEED && resp.iteration < iteration)
                        stale++;
                else
                        stale = 0;
                if (resp.retcode == FL_SUCCEED && (resp.iteration >= iteration || stale >= STALE_ANSWERS)) {
                        if (resp.n_feature_map != LENET5_N_TENSORS)
                                return log_error_errno(-EBADMSG, "%s served a model that is not LeNet-5.", url);
                        r = fl_model_from_feature_maps(resp.feature_map, resp.n_feature_map, ret);
                        if (r >= 0)
                                r = lenet5_check(*ret);
                        if (r < 0)
                                return log_error_errno(r == -ENOMEM ? r : -EBADMSG,
                                                       "%s served a model that is not LeNet-5.", url);
                        *ret_abandoned = resp.iteration < iteration;
                        return 0;
                }
                if (resp.retcode != FL_SUCCEED && resp.retcode != FL_SUC_NOT_READY)
                        return log_error_errno(-EREMOTEIO, "%s refused getModel for iteration %" PRIi32
                                               " (retcode %" PRIi32 "): %s", url, iteration, resp.retcode,
                                               reason_sanitize(resp.reason, reason, sizeof reason));

                /* ResponseGetModel carries no next_req_time: a short back-off. */
                wait = backoff;
                if (now_usec(CLOCK_MONOTONIC) + wait >= deadline)
                        return log_error_errno(-ETIMEDOUT, "The model of iteration %" PRIi32 " was not ready "
                                               "within %" PRIu64 " s (see --timeout).", iteration,
                                               o->timeout_usec / USEC_PER_SEC);
                sleep_usec(wait);
                backoff = MIN(backoff * 2, (uint64_t) POLL_BACKOFF_MAX_USEC);
        }
}

/* ---------------------------------------------------------------- the table */

/* A row; without evaluated (--eval-every), "-" for the accuracy and the loss
 * (empty fields in the CSV, whose last field lists the devices whose
 * updates were taken, by index, space-separated). */
static int print_row(Run *run, int32_t iteration, size_t devices, bool evaluated, double accuracy, double loss,
                     double seconds) {
        progress_clear(&run->progress);
        /* Not before the first row: a run that trains nothing prints nothing. */
        if (!run->printed_header) {
                printf("%-9s  %-7s  %-13s  %-9s  %s\n", "iteration", "devices", "test-accuracy", "test-loss", "seconds");
                run->printed_header = true;
        }
        if (evaluated)
                printf("%-9" PRIi32 "  %-7zu  %-13.4f  %-9.4f  %.1f\n", iteration, devices, accuracy, loss, seconds);
        else
                printf("%-9" PRIi32 "  %-7zu  %-13s  %-9s  %.1f\n", iteration, devices, "-", "-", seconds);
        if (fflush(stdout) != 0)
                return log_error_errno(negative_errno(), "Failed to write the table: %m");
        if (run->csv) {
                bool first = true;

                if (evaluated)
                        fprintf(run->csv, "%" PRIi32 ",%zu,%.6f,%.6f,%.3f,", iteration, devices, accuracy, loss,
                                seconds);
                else
                        fprintf(run->csv, "%" PRIi32 ",%zu,,,%.3f,", iteration, devices, seconds);
                for (size_t k = 0; devices > 0 && k < run->o->n_devices; k++)
                        if (run->devices[k].state == DEVICE_UPDATED) {
                                fprintf(run->csv, "%s%zu", first ? "" : " ", k);
                                first = false;
                        }
                fputc('\n', run->csv);
                if (fflush(run->csv) != 0 || ferror(run->csv))
                        return log_error_errno(negative_errno(), "Failed to write %s: %m", run->o->csv_path);
        }
        return 0;
}

/* ---------------------------------------------------------------- iterations */

typedef struct Admission {
        int32_t iteration;              /* -1: nobody selected */
        int32_t plan_iterations;
        size_t selected, finished;
        uint64_t next_req_time;         /* the soonest a refused device may retry, ms */
} Admission;

/* Devices run->order[from..to) ask to join, together. */
static int ask(Run *run, size_t from, size_t to) {
        if (from >= to)
                return 0;
        run->asking = run->order + from;
        run->n_asking = to - from;
        return pool_run_ticking(run->pool, run->n_asking, task_start, run, tick_admit, run, PROGRESS_INTERVAL_USEC);
}

static bool refused(const Device *d) {
        return d->state != DEVICE_SELECTED;
}

/* Every device asks to join (client-run.h has the order); those admitted in
 * the newest iteration train. */
static int admit(Run *run, Admission *ret) {
        size_t n = run->o->n_devices, together = MIN(run->admitted_last, n), k;
        Admission a = { .iteration = -1 };
        bool full = false;
        Rng rng;
        int r;

        for (k = 0; k < n; k++) {
                run->order[k] = (uint32_t) k;
                run->devices[k].state = DEVICE_IDLE;
        }
        rng_seed(&rng, rng_derive_seed(rng_derive_seed(run->o->seed, UINT64_C(0x6f72646572)), run->round));
        rng_shuffle_u32(&rng, run->order, n);

        /* As many as last time together (they are all admitted, unless the
         * threshold went down), then one at a time until one is refused. */
        r = ask(run, 0, together);
        if (r < 0)
                return r;
        for (k = 0; k < together; k++)
                full = full || refused(run->devices + run->order[k]);
        for (k = together; k < n && !full; k++) {
                r = ask(run, k, k + 1);
                if (r < 0)
                        return r;
                full = refused(run->devices + run->order[k]);
        }
        r = ask(run, k, n);
        if (r < 0)
                return r;

        for (k = 0; k < n; k++) {
                Device *d = run->devices + k;

                if (d->state == DEVICE_SELECTED && d->iteration > a.iteration) {
                        a.iteration = d->iteration;
                        a.plan_iterations = d->plan_iterations;
                }
                if (d->state == DEVICE_FINISHED)
                        a.finished++;
                if (d->state == DEVICE_NOT_SELECTED && d->next_req_time > 0)
                        a.next_req_time = a.next_req_time ? MIN(a.next_req_time, d->next_req_time) : d->next_req_time;
        }
        /* Admitted in an iteration that has already moved on: its update
         * would be refused. */
        for (k = 0; k < n; k++) {
                Device *d = run->devices + k;

                if (d->state != DEVICE_SELECTED)
                        continue;
                if (d->iteration < a.iteration)
                        d->state = DEVICE_NOT_SELECTED;
                else
                        a.selected++;
        }
        if (a.selected > 0)
                run->admitted_last = a.selected;
        *ret = a;
        return 0;
}

/* Whether the model of iteration (the done-th of this run, 1-based) is
 * evaluated: --eval-every's multiples, and the last of the run always. */
static bool evaluate_now(const RunOptions *o, int32_t iteration, int32_t plan_iterations, unsigned done) {
        bool last = o->iterations > 0 ? done >= o->iterations : plan_iterations > 0 && iteration >= plan_iterations;

        return last || o->eval_every <= 1 || (uint32_t) iteration % o->eval_every == 0;
}

static int run_iteration(Run *run, unsigned done, int32_t *ret_iteration, int32_t *ret_plan_iterations,
                         bool *ret_finished) {
        uint64_t start = now_usec(CLOCK_MONOTONIC), deadline = start + run->o->timeout_usec;
        _cleanup_(model_freep) Model *m = NULL;
        size_t updated = 0, finished = 0;
        double accuracy = 0, loss = 0;
        bool abandoned = false, evaluated;
        Admission a;
        int r;

        *ret_finished = false;
        progress_begin(&run->progress);
        run->round++;
        for (;;) {
                uint64_t wait = 500 * USEC_PER_MSEC, now_ms;

                r = admit(run, &a);
                if (r < 0)
                        return r;
                if (a.finished > 0 && a.selected == 0) {
                        *ret_finished = true;
                        return 0;
                }
                if (a.selected > 0)
                        break;

                /* Nobody admitted (the iteration is full, or between phases):
                 * come back when the servers said to, within bounds. */
                now_ms = now_msec_realtime();
                if (a.next_req_time > now_ms)
                        wait = MIN(MAX((a.next_req_time - now_ms) * USEC_PER_MSEC, 100 * USEC_PER_MSEC),
                                   5 * USEC_PER_SEC);
                if (now_usec(CLOCK_MONOTONIC) + wait >= deadline)
                        return log_error_errno(-ETIMEDOUT, "No device was admitted for %" PRIu64 " s (see --timeout).",
                                               run->o->timeout_usec / USEC_PER_SEC);
                log_debug("No device admitted; asking again in %" PRIu64 " ms.", wait / USEC_PER_MSEC);
                progress_show(&run->progress, "waiting to be admitted", 0, 0);
                sleep_usec(wait);
        }

        log_debug("Iteration %" PRIi32 ": %zu devices admitted after %.2f s.", a.iteration, a.selected,
                  (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC);
        progress_set_iteration(&run->progress, a.iteration);
        run->selected = a.selected;
        atomic_store(&run->trained, 0);
        r = pool_run_ticking(run->pool, run->o->n_devices, task_update, run, tick_train, run, PROGRESS_INTERVAL_USEC);
        model_cache_clear(&run->ctx.cache);
        if (r < 0)
                return r;
        for (size_t k = 0; k < run->o->n_devices; k++) {
                updated += run->devices[k].state == DEVICE_UPDATED;
                finished += run->devices[k].state == DEVICE_FINISHED;
        }
        if (updated == 0 && finished > 0) {
                *ret_finished = true;
                return 0;
        }

        log_debug("Iteration %" PRIi32 ": %zu updates accepted after %.2f s.", a.iteration, updated,
                  (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC);
        r = fetch_model(run, a.iteration, &m, &abandoned);
        if (r < 0)
                return r;
        run->ctx.last_iteration = a.iteration;
        if (abandoned) {
                log_warning("Iteration %" PRIi32 " was abandoned (a time window expired before enough updates "
                            "came in); the model is unchanged.", a.iteration);
                updated = 0;
        }
        for (size_t k = 0; !abandoned && k < run->o->n_devices; k++)
                if (run->devices[k].state == DEVICE_UPDATED)
                        run->examples += run->devices[k].n_examples;

        log_debug("Iteration %" PRIi32 ": model received after %.2f s.", a.iteration,
                  (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC);
        evaluated = evaluate_now(run->o, a.iteration, a.plan_iterations, done + 1);
        if (evaluated) {
                r = evaluate(run, m, &accuracy, &loss);
                if (r < 0)
                        return log_error_errno(r, "Failed to evaluate the model of iteration %" PRIi32 ": %m",
                                               a.iteration);
        }
        r = print_row(run, a.iteration, updated, evaluated, accuracy, loss,
                      (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC);
        if (r < 0)
                return r;

        if (run->o->model_path) {
                r = fl_model_save_file(run->o->model_path, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", run->o->model_path);
        }

        *ret_iteration = a.iteration;
        *ret_plan_iterations = a.plan_iterations;
        return 0;
}

int client_run(const RunOptions *o) {
        _cleanup_(run_done) Run run = { .o = o };
        unsigned done = 0;
        int r;

        r = run_setup(&run);
        if (r < 0)
                return r;

        for (;;) {
                int32_t iteration = -1, plan_iterations = 0;
                bool finished;

                r = run_iteration(&run, done, &iteration, &plan_iterations, &finished);
                if (r < 0)
                        return r;
                if (finished) {
                        if (done == 0)
                                return log_error_errno(-ESHUTDOWN, "The training job is disabled or finished: "
                                                       "no iteration to take part in.");
                        log_info("The training job is finished; the devices' updates held %" PRIu64
                                 " examples in all.", run.examples);
                        return 0;
                }
                done++;

                if (o->iterations > 0 ? done >= o->iterations :
                                        plan_iterations > 0 && iteration >= plan_iterations) {
                        log_info("%u iterations; the devices' updates held %" PRIu64 " examples in all.", done,
                                 run.examples);
                        return 0;
                }
        }
}
