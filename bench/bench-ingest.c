/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The updateModel ingest benchmark's load generator: libcurl's multi
 * interface, C transfers in flight at once (64 by default) over keep-alive
 * connections, LeNet-5-size updates (61,684 floats, about 247 KB a body).
 *
 *   bench-ingest write-model FILE
 *        writes the LeNet-5 model (lenet5_init, seed 1) for fl-serverd's
 *        --model_path
 *   bench-ingest discard --url URL [--devices N] [--concurrency C]
 *        posts N updateModel bodies to URL/updateModel of bench-http-discard
 *   bench-ingest server --url URL [--devices N] [--concurrency C] [--fl-name NAME]
 *                       [--model FILE] [--baseline-url URL [--bursts K]]
 *        against a real fl-serverd: waits until its rounds are open, admits N
 *        distinct fl_ids with startFLJob (each must be selected), then posts
 *        their N updates; every ResponseUpdateModel must say SUCCEED.
 *        With --baseline-url (a bench-http-discard), the updates go out in K
 *        bursts, each right after a burst of as many requests to the
 *        baseline: both see the same moments of the machine, and each pair
 *        gives a ratio (printed: their median, range and the ratio of totals).
 *   --model FILE: the updates carry the weights of this model file (the
 *        server's --model_path, e.g. from bench-model) instead of LeNet-5
 *   --server-pid, --scheduler-pid, --baseline-pid PID: also print the CPU
 *        time those processes used during each phase (/proc/PID/schedstat)
 *   --cacert FILE: https:// URLs are checked against this CA (a TLS cluster)
 *   bench-ingest connect --url URL [--cacert FILE] [--connections N] [--server-pid PID]
 *        N new connections one after another, each with one GET URL/ (the
 *        device port's status): what a new device connection costs, with a
 *        full handshake each time over https (no TLS session is resumed).
 *        The server's CPU time comes from /proc/PID/stat (all its threads).
 *        RESULT phase=connect n=... seconds=... ms_per_conn=...
 *               client_cpu_us_per_conn=... server_cpu_us_per_conn=...
 *
 * Each timed phase prints human lines and one machine line:
 *   RESULT phase=updateModel n=5000 ok=5000 failed=0 body_bytes=... seconds=... per_s=...
 *          mb_per_s=... p50_ms=... p99_ms=... client_cpu_s=... server_cpu_s=... scheduler_cpu_s=...
 *   RESULT phase=compare bursts=K ratio_median=... ratio_min=... ratio_max=... ratio_total=...
 * MB/s counts request body bytes (10^6 bytes); a CPU time of -1 is unknown.
 * The process exits non-zero when any answer was not SUCCEED.
 *
 * Bodies are encoded once per phase with a fixed-width placeholder fl_id;
 * each transfer patches the id in its own copy, so building requests costs
 * nothing on the clock. The client shares the machine with the server, the
 * same way against both. */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "curl-util.h"
#include "fl-messages.h"
#include "fl-model-io.h"
#include "lenet5.h"
#include "log.h"
#include "util.h"

#define FL_ID_FORMAT "bench-%08zu"
#define FL_ID_PLACEHOLDER "bench-########"
#define FL_ID_LEN (sizeof(FL_ID_PLACEHOLDER) - 1)
#define DEVICES_MAX ((size_t) 99999999)
#define RESPONSE_MAX ((size_t) 64 * 1024 * 1024)
#define TRANSFER_TIMEOUT_MS 120000L
#define FAILURES_SHOWN 5
#define BURSTS_MAX 1000

typedef enum Mode {
        MODE_DISCARD,
        MODE_SERVER,
        MODE_CONNECT,
} Mode;

typedef struct Options {
        Mode mode;
        const char *url;
        const char *baseline_url;       /* server mode: interleave with this bench-http-discard */
        size_t devices;
        size_t concurrency;
        size_t bursts;
        const char *fl_name;
        const char *model_path;         /* the update's weights; NULL: LeNet-5 */
        uint32_t data_size;
        uint32_t ready_timeout_s;
        const char *cacert;             /* https: the CA (PEM) */
        size_t connections;             /* connect mode */
        /* To account their CPU time per phase; 0 for none. */
        unsigned server_pid, scheduler_pid, baseline_pid;
} Options;

typedef enum Kind {
        KIND_START_FL_JOB,
        KIND_UPDATE_MODEL,
        KIND_GET_MODEL,
} Kind;

/* One phase: the same request for devices [first, first + n), C at a time. */
typedef struct Phase {
        const char *name;
        Kind kind;
        const char *path;
        uint8_t *body;                  /* the template */
        size_t body_size;
        size_t id_offset;               /* of the placeholder fl_id, or SIZE_MAX */
        size_t first, n;

        /* Results. */
        size_t ok;
        size_t http_errors, transport_errors, text_answers, undecodable;
        size_t retcodes[6];             /* 200, 300, 400, 500, other, not selected */
        int32_t iteration;              /* from the answers (startFLJob) */
        bool iteration_mixed;
        double seconds;
        double client_cpu_s, server_cpu_s, scheduler_cpu_s;     /* < 0: unknown */
        double *latency_ms;             /* n_latency of them */
        size_t n_latency;
        size_t failures_shown;
} Phase;

typedef struct Slot {
        CURL *easy;
        uint8_t *body;
        size_t index;                   /* device */
        double started;
        uint8_t *resp;
        size_t resp_size, resp_allocated;
        bool resp_too_large;
        char errbuf[CURL_ERROR_SIZE];
} Slot;

/* C transfers to one server. */
typedef struct Loader {
        CURLM *multi;
        Slot *slots;
        size_t n_slots;
        struct curl_slist *headers;
        const char *url;
        const char *cacert;
        unsigned server_pid, scheduler_pid;
} Loader;

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static size_t resp_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        Slot *s = userdata;
        size_t n = size * nmemb;

        if (n > RESPONSE_MAX - s->resp_size) {
                s->resp_too_large = true;
                return 0;
        }
        if (s->resp_size + n > s->resp_allocated) {
                size_t want = MAX(MAX(s->resp_allocated * 2, s->resp_size + n), (size_t) 4096);
                uint8_t *p = realloc(s->resp, want);      /* malloc()ed: aligned for the decoder */

                if (!p)
                        return 0;
                s->resp = p;
                s->resp_allocated = want;
        }
        memcpy(s->resp + s->resp_size, ptr, n);
        s->resp_size += n;
        return n;
}

static void loader_done(Loader *l) {
        for (size_t i = 0; i < l->n_slots; i++) {
                Slot *s = &l->slots[i];

                if (s->easy) {
                        (void) curl_multi_remove_handle(l->multi, s->easy);
                        curl_easy_cleanup(s->easy);
                }
                free(s->body);
                free(s->resp);
        }
        free(l->slots);
        if (l->multi)
                curl_multi_cleanup(l->multi);
        curl_slist_free_all(l->headers);
        *l = (Loader) {};
}

static int loader_init(Loader *l, const Options *o, const char *url, unsigned server_pid, unsigned scheduler_pid) {
        struct curl_slist *h;

        *l = (Loader) {
                .url = url,
                .server_pid = server_pid,
                .scheduler_pid = scheduler_pid,
        };
        l->multi = curl_multi_init();
        l->slots = calloc(o->concurrency, sizeof(Slot));
        if (!l->multi || !l->slots)
                return -ENOMEM;
        l->n_slots = o->concurrency;
        /* One connection per slot, all kept alive across requests and phases. */
        (void) curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long) o->concurrency);

        l->headers = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        if (!l->headers)
                return -ENOMEM;
        /* No "Expect: 100-continue" round trip before each body. */
        h = curl_slist_append(l->headers, "Expect:");
        if (!h)
                return -ENOMEM;
        l->headers = h;
        l->cacert = o->cacert;

        for (size_t i = 0; i < l->n_slots; i++) {
                Slot *s = &l->slots[i];

                s->easy = curl_easy_init();
                if (!s->easy)
                        return -ENOMEM;
                (void) curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, l->headers);
                (void) curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, resp_write);
                (void) curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
                (void) curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
                (void) curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
                (void) curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, TRANSFER_TIMEOUT_MS);
                (void) curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
                (void) curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
                (void) curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
                if (l->cacert)
                        (void) curl_use_ca(s->easy, l->cacert);
        }
        return 0;
}

/* ---- Request bodies ---------------------------------------------------------- */

static int find_placeholder(const uint8_t *buf, size_t size, size_t *ret) {
        const uint8_t *p = memmem(buf, size, FL_ID_PLACEHOLDER, FL_ID_LEN);

        if (!p || memmem(p + 1, size - (size_t) (p + 1 - buf), FL_ID_PLACEHOLDER, FL_ID_LEN))
                return -EINVAL;
        *ret = (size_t) (p - buf);
        return 0;
}

static int phase_body_fl_job(Phase *p, const Options *o) {
        FlRequestFLJob msg = {
                .fl_name = o->fl_name,
                .fl_id = FL_ID_PLACEHOLDER,
                .data_size = (int32_t) o->data_size,
                .timestamp = "0",
        };
        int r;

        r = fl_request_fl_job_encode(&msg, &p->body, &p->body_size);
        return r < 0 ? r : find_placeholder(p->body, p->body_size, &p->id_offset);
}

/* The update a MindSpore client sends: the weights multiplied by data_size. */
static int phase_body_update(Phase *p, const Options *o, const Model *update, int32_t iteration) {
        _cleanup_free_ FlFeatureMap *maps = NULL;
        FlRequestUpdateModel msg = {
                .fl_name = o->fl_name,
                .fl_id = FL_ID_PLACEHOLDER,
                .iteration = iteration,
                .timestamp = "0",
                .upload_loss = 0.5f,
        };
        int r;

        r = fl_model_to_feature_maps(update, &maps);
        if (r < 0)
                return r;
        msg.feature_map = maps;
        msg.n_feature_map = update->n_tensors;
        r = fl_request_update_model_encode(&msg, &p->body, &p->body_size);
        return r < 0 ? r : find_placeholder(p->body, p->body_size, &p->id_offset);
}

static int phase_body_get_model(Phase *p, const Options *o) {
        FlRequestGetModel msg = { .fl_name = o->fl_name, .timestamp = "0" };

        p->id_offset = SIZE_MAX;
        return fl_request_get_model_encode(&msg, &p->body, &p->body_size);
}

static void phase_done(Phase *p) {
        free(p->body);
        free(p->latency_ms);
}

/* ---- Answers ------------------------------------------------------------------- */

static void phase_fail(Phase *p, size_t index, const char *what) {
        if (p->failures_shown++ < FAILURES_SHOWN)
                log_warning("%s of device " FL_ID_FORMAT ": %s", p->name, index, what);
}

static size_t retcode_slot(int32_t rc) {
        switch (rc) {
        case 200: return 0;
        case 300: return 1;
        case 400: return 2;
        case 500: return 3;
        default: return 4;
        }
}

/* Tells whether the answer in s is the one this phase wants. */
static void phase_check(Phase *p, Slot *s, CURLcode result) {
        char reason[FL_REASON_MAX] = "", what[FL_REASON_MAX + 64];
        long status = 0;
        int32_t rc = 0;
        const char *rs = NULL;
        int r;

        if (result != CURLE_OK) {
                p->transport_errors++;
                snprintf(what, sizeof what, "transfer failed: %.160s",
                         s->errbuf[0] ? s->errbuf : curl_easy_strerror(result));
                return phase_fail(p, s->index, what);
        }
        (void) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
                p->http_errors++;
                snprintf(what, sizeof what, "HTTP status %ld: %.*s", status, (int) MIN(s->resp_size, (size_t) 120),
                         s->resp ? (const char *) s->resp : "");
                return phase_fail(p, s->index, what);
        }
        if (s->resp_size > 0 && s->resp_size < 200 && memchr(s->resp, 0, s->resp_size) == NULL) {
                /* "The cluster is in safemode." and friends. */
                p->text_answers++;
                snprintf(what, sizeof what, "plain-text answer: %.*s", (int) s->resp_size, (const char *) s->resp);
                return phase_fail(p, s->index, what);
        }

        switch (p->kind) {
        case KIND_START_FL_JOB: {
                _cleanup_(fl_response_fl_job_done) FlResponseFLJob resp = {};

                r = fl_response_fl_job_decode(s->resp, s->resp_size, &resp, reason);
                if (r < 0)
                        break;
                rc = resp.retcode;
                rs = resp.reason;
                if (rc == FL_SUCCEED && !resp.is_selected) {
                        p->retcodes[5]++;
                        return phase_fail(p, s->index, "SUCCEED but not selected");
                }
                if (rc == FL_SUCCEED) {
                        if (p->ok > 0 && resp.iteration != p->iteration)
                                p->iteration_mixed = true;
                        p->iteration = resp.iteration;
                }
                goto retcode;
        }
        case KIND_UPDATE_MODEL: {
                _cleanup_(fl_response_update_model_done) FlResponseUpdateModel resp = {};

                r = fl_response_update_model_decode(s->resp, s->resp_size, &resp, reason);
                if (r < 0)
                        break;
                rc = resp.retcode;
                rs = resp.reason;
                goto retcode;
        }
        case KIND_GET_MODEL: {
                _cleanup_(fl_response_get_model_done) FlResponseGetModel resp = {};

                r = fl_response_get_model_decode(s->resp, s->resp_size, &resp, reason);
                if (r < 0)
                        break;
                /* The rounds are open: any protocol answer will do. */
                rc = FL_SUCCEED;
                goto retcode;
        }
        }
        p->undecodable++;
        snprintf(what, sizeof what, "undecodable answer of %zu bytes: %s", s->resp_size, reason);
        return phase_fail(p, s->index, what);

retcode:
        p->retcodes[retcode_slot(rc)]++;
        if (rc == FL_SUCCEED) {
                p->ok++;
                return;
        }
        snprintf(what, sizeof what, "retcode %" PRIi32 ": %s", rc, strna(rs));
        phase_fail(p, s->index, what);
}

/* ---- The loop ---------------------------------------------------------------------- */

static int slot_start(Loader *l, Slot *s, const Phase *p, size_t next) {
        char url[512], id[FL_ID_LEN + 1];
        size_t index = p->first + next;

        s->index = index;
        s->resp_size = 0;
        s->resp_too_large = false;
        s->errbuf[0] = '\0';
        if (p->id_offset != SIZE_MAX) {
                snprintf(id, sizeof id, FL_ID_FORMAT, index);
                memcpy(s->body + p->id_offset, id, FL_ID_LEN);
        }
        snprintf(url, sizeof url, "%s%s", l->url, p->path);
        (void) curl_easy_setopt(s->easy, CURLOPT_URL, url);
        (void) curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
        (void) curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) p->body_size);
        s->started = now_s();
        return curl_multi_add_handle(l->multi, s->easy) == CURLM_OK ? 0 : -EIO;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double q) {
        return n == 0 ? 0 : sorted[MIN(n - 1, (size_t) (q * (double) (n - 1) + 0.5))];
}

static double self_cpu_s(void) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return 0;
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec * 1e-6 +
               (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec * 1e-6;
}

/* CPU time of another process in seconds (user + system, all its threads),
 * from the scheduler's own nanosecond account; -1 when unknown. */
static double process_cpu_s(unsigned pid) {
        char path[64];
        unsigned long long ns;
        FILE *f;
        int k;

        if (pid == 0)
                return -1;
        snprintf(path, sizeof path, "/proc/%u/schedstat", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        k = fscanf(f, "%llu", &ns);
        fclose(f);
        return k == 1 ? (double) ns * 1e-9 : -1;
}

/* User + system CPU time of a process and all its threads, in seconds
 * (/proc/PID/stat, clock ticks); -1 when unknown. */
static double process_stat_cpu_s(unsigned pid) {
        char path[64], buf[2048], *p;
        unsigned long long utime, stime;
        size_t n;
        FILE *f;

        if (pid == 0)
                return -1;
        snprintf(path, sizeof path, "/proc/%u/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* The command name may hold spaces: fields count from the last ')'. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return -1;
        return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
        return size * nmemb;
}

/* New connections one after another: the cost of a device's first request. */
static int run_connect(const Options *o) {
        CURL *c = curl_easy_init();
        double t0, cpu0, srv0, seconds, cpu, srv;
        char url[512];
        size_t ok = 0;
        long status = 0;

        if (!c)
                return log_oom();
        snprintf(url, sizeof url, "%s/", o->url);
        (void) curl_easy_setopt(c, CURLOPT_URL, url);
        (void) curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
        /* Every connection new, every handshake full: as a device seen for the first time. */
        (void) curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        (void) curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        (void) curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
        if (o->cacert)
                (void) curl_use_ca(c, o->cacert);

        t0 = now_s();
        cpu0 = self_cpu_s();
        srv0 = process_stat_cpu_s(o->server_pid);
        for (size_t i = 0; i < o->connections; i++) {
                CURLcode cc = curl_easy_perform(c);

                if (cc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
                    status == 200)
                        ok++;
                else if (ok + FAILURES_SHOWN > i)
                        log_warning("Connection %zu: %s (HTTP %ld).", i, curl_easy_strerror(cc), status);
        }
        seconds = now_s() - t0;
        cpu = self_cpu_s() - cpu0;
        srv = srv0 < 0 ? -1 : process_stat_cpu_s(o->server_pid) - srv0;
        curl_easy_cleanup(c);

        printf("%zu new connections to %s, one GET each: %.3f ms each, client CPU %.0f us, server CPU %.0f us\n",
               o->connections, o->url, seconds * 1e3 / (double) o->connections, cpu * 1e6 / (double) o->connections,
               srv < 0 ? -1.0 : srv * 1e6 / (double) o->connections);
        printf("RESULT phase=connect n=%zu ok=%zu seconds=%.6f ms_per_conn=%.6f client_cpu_us_per_conn=%.1f "
               "server_cpu_us_per_conn=%.1f\n", o->connections, ok, seconds, seconds * 1e3 / (double) o->connections,
               cpu * 1e6 / (double) o->connections, srv < 0 ? -1.0 : srv * 1e6 / (double) o->connections);
        return ok == o->connections ? 0 : -EPROTO;
}

static void phase_print(Phase *p, size_t in_flight) {
        double mb = (double) p->body_size * (double) p->n / 1e6;
        double p50, p99;

        qsort(p->latency_ms, p->n_latency, sizeof(double), cmp_double);
        p50 = percentile(p->latency_ms, p->n_latency, 0.50);
        p99 = percentile(p->latency_ms, p->n_latency, 0.99);
        printf("%-12s %7zu requests of %zu bytes, %zu in flight: %.3f s, %.0f/s, %.1f MB/s, "
               "latency p50 %.1f ms p99 %.1f ms; %zu SUCCEED\n",
               p->name, p->n, p->body_size, in_flight, p->seconds, (double) p->n / p->seconds,
               mb / p->seconds, p50, p99, p->ok);
        if (p->ok != p->n)
                printf("             not SUCCEED: %zu transport, %zu HTTP, %zu plain-text, %zu undecodable, "
                       "retcode 300: %zu, 400: %zu, 500: %zu, other: %zu, not selected: %zu\n",
                       p->transport_errors, p->http_errors, p->text_answers, p->undecodable,
                       p->retcodes[1], p->retcodes[2], p->retcodes[3], p->retcodes[4], p->retcodes[5]);
        printf("             CPU: client %.2f s (%.0f us/request)", p->client_cpu_s,
               p->client_cpu_s / (double) p->n * 1e6);
        if (p->server_cpu_s >= 0)
                printf(", server %.2f s (%.0f us/request, %.0f%% of one core)", p->server_cpu_s,
                       p->server_cpu_s / (double) p->n * 1e6, 100 * p->server_cpu_s / p->seconds);
        if (p->scheduler_cpu_s >= 0)
                printf(", scheduler %.2f s (%.0f us/request)", p->scheduler_cpu_s,
                       p->scheduler_cpu_s / (double) p->n * 1e6);
        printf("\n");
        printf("RESULT phase=%s n=%zu ok=%zu failed=%zu body_bytes=%zu seconds=%.4f per_s=%.2f mb_per_s=%.2f "
               "p50_ms=%.2f p99_ms=%.2f client_cpu_s=%.3f server_cpu_s=%.3f scheduler_cpu_s=%.3f\n",
               p->name, p->n, p->ok, p->n - p->ok, p->body_size, p->seconds, (double) p->n / p->seconds,
               mb / p->seconds, p50, p99, p->client_cpu_s, p->server_cpu_s, p->scheduler_cpu_s);
        fflush(stdout);
}

/* Adds a burst's results into a total of the same kind. */
static int phase_merge(Phase *total, const Phase *burst) {
        double *l = reallocarray(total->latency_ms, total->n_latency + burst->n_latency, sizeof(double));

        if (!l)
                return -ENOMEM;
        memcpy(l + total->n_latency, burst->latency_ms, burst->n_latency * sizeof(double));
        total->latency_ms = l;
        total->n_latency += burst->n_latency;
        total->n += burst->n;
        total->ok += burst->ok;
        total->http_errors += burst->http_errors;
        total->transport_errors += burst->transport_errors;
        total->text_answers += burst->text_answers;
        total->undecodable += burst->undecodable;
        for (size_t i = 0; i < ELEMENTSOF(total->retcodes); i++)
                total->retcodes[i] += burst->retcodes[i];
        total->seconds += burst->seconds;
        total->client_cpu_s += burst->client_cpu_s;
        total->server_cpu_s = total->server_cpu_s < 0 || burst->server_cpu_s < 0 ? -1 :
                              total->server_cpu_s + burst->server_cpu_s;
        total->scheduler_cpu_s = total->scheduler_cpu_s < 0 || burst->scheduler_cpu_s < 0 ? -1 :
                                 total->scheduler_cpu_s + burst->scheduler_cpu_s;
        total->body_size = burst->body_size;
        return 0;
}

static int phase_run(Loader *l, Phase *p, bool quiet) {
        size_t next = 0, running = 0, done = 0;
        double t0, client0, server0, server1, scheduler0, scheduler1;

        p->latency_ms = calloc(MAX(p->n, (size_t) 1), sizeof(double));
        if (!p->latency_ms)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_slots; i++) {
                free(l->slots[i].body);
                l->slots[i].body = malloc(p->body_size);
                if (!l->slots[i].body)
                        return -ENOMEM;
                memcpy(l->slots[i].body, p->body, p->body_size);
        }

        client0 = self_cpu_s();
        server0 = process_cpu_s(l->server_pid);
        scheduler0 = process_cpu_s(l->scheduler_pid);
        t0 = now_s();
        for (size_t i = 0; i < l->n_slots && next < p->n; i++, next++, running++)
                if (slot_start(l, &l->slots[i], p, next) < 0)
                        return -EIO;

        while (running > 0) {
                bool finished = false;
                CURLMsg *msg;
                int still, left;

                if (curl_multi_perform(l->multi, &still) != CURLM_OK)
                        return -EIO;
                while ((msg = curl_multi_info_read(l->multi, &left))) {
                        Slot *s;

                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        finished = true;
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
                        p->latency_ms[done++] = (now_s() - s->started) * 1e3;
                        phase_check(p, s, msg->data.result);
                        (void) curl_multi_remove_handle(l->multi, s->easy);
                        running--;
                        if (next < p->n) {
                                if (slot_start(l, s, p, next++) < 0)
                                        return -EIO;
                                running++;
                        }
                }
                /* Only wait when nothing finished: transfers that ended inside
                 * curl_multi_perform() leave no socket to wake the poll. */
                if (!finished && running > 0 && curl_multi_poll(l->multi, NULL, 0, 1000, NULL) != CURLM_OK)
                        return -EIO;
        }
        p->seconds = now_s() - t0;
        p->client_cpu_s = self_cpu_s() - client0;
        server1 = process_cpu_s(l->server_pid);
        p->server_cpu_s = server0 >= 0 && server1 >= 0 ? server1 - server0 : -1;
        scheduler1 = process_cpu_s(l->scheduler_pid);
        p->scheduler_cpu_s = scheduler0 >= 0 && scheduler1 >= 0 ? scheduler1 - scheduler0 : -1;

        p->n_latency = done;
        if (!quiet)
                phase_print(p, l->n_slots);
        return 0;
}

/* ---- Modes ---------------------------------------------------------------------------- */

/* The server's own model (the names and sizes it checks) times data_size. */
static int update_model_new(Model **ret, const Options *o) {
        _cleanup_(model_freep) Model *m = NULL;
        int r;

        r = o->model_path ? fl_model_load_file(o->model_path, 0, &m) : lenet5_init(&m, 1);
        if (r < 0)
                return r;
        for (size_t t = 0; t < m->n_tensors; t++)
                for (size_t i = 0; i < m->tensors[t].size; i++)
                        m->tensors[t].data[i] *= (float) o->data_size;
        *ret = TAKE_PTR(m);
        return 0;
}

/* Until a getModel gets a protocol answer (not safemode text): the server is
 * registered, the cluster ready and the iteration known. */
static int wait_ready(Loader *l, const Options *o) {
        double deadline = now_s() + o->ready_timeout_s;
        Loader one = *l;

        one.n_slots = 1;
        for (;;) {
                /* Quiet while waiting: no failure is shown. */
                Phase p = { .name = "ready-probe", .kind = KIND_GET_MODEL, .path = "/getModel", .n = 1,
                            .failures_shown = FAILURES_SHOWN };
                int r;

                r = phase_body_get_model(&p, o);
                if (r >= 0)
                        r = phase_run(&one, &p, true);
                if (r >= 0 && p.ok == 1) {
                        phase_done(&p);
                        return 0;
                }
                phase_done(&p);
                if (r < 0)
                        return r;
                if (now_s() > deadline)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec) { .tv_nsec = 100 * 1000 * 1000 }, NULL);
        }
}

/* Opens every connection of the loader first, as the admissions do against
 * a server. */
static int warm_up(Loader *l, const Options *o, const Model *update) {
        Phase warm = { .name = "warmup", .kind = KIND_UPDATE_MODEL, .path = "/updateModel", .n = o->concurrency };
        int r;

        r = phase_body_update(&warm, o, update, 0);
        if (r >= 0)
                r = phase_run(l, &warm, true);
        if (r >= 0 && warm.ok != warm.n)
                r = -EPROTO;
        phase_done(&warm);
        return r;
}

static int run_discard(Loader *l, const Options *o) {
        _cleanup_(model_freep) Model *update = NULL;
        Phase p = { .name = "discard", .kind = KIND_UPDATE_MODEL, .path = "/updateModel", .n = o->devices };
        int r;

        r = update_model_new(&update, o);
        if (r >= 0)
                r = phase_body_update(&p, o, update, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to build the update from %s: %m", o->model_path ?: "LeNet-5");

        r = warm_up(l, o, update);
        if (r >= 0)
                r = phase_run(l, &p, false);
        if (r < 0)
                log_error_errno(r, "The transfers failed: %m");
        else if (p.ok != p.n)
                r = -EPROTO;
        phase_done(&p);
        return r;
}

static void print_compare(const double *ratios, size_t n, const Phase *discard, const Phase *update) {
        double sorted[n], med;

        memcpy(sorted, ratios, n * sizeof(double));
        qsort(sorted, n, sizeof(double), cmp_double);
        med = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        printf("compare      %zu burst pairs, updateModel/discard: median %.3f, range %.3f-%.3f; totals %.3f\n",
               n, med, sorted[0], sorted[n - 1],
               ((double) update->n / update->seconds) / ((double) discard->n / discard->seconds));
        printf("RESULT phase=compare bursts=%zu ratio_median=%.4f ratio_min=%.4f ratio_max=%.4f ratio_total=%.4f\n",
               n, med, sorted[0], sorted[n - 1],
               ((double) update->n / update->seconds) / ((double) discard->n / discard->seconds));
        fflush(stdout);
}

/* The updates in bursts, each after as many requests to the baseline. */
static int run_interleaved(Loader *l, Loader *baseline, const Options *o, const Model *update, int32_t iteration) {
        Phase total_discard = { .name = "discard" }, total_update = { .name = "updateModel" };
        double ratios[BURSTS_MAX];
        size_t bursts = MIN(o->bursts, o->devices);
        int r;

        r = warm_up(baseline, o, update);
        if (r < 0)
                return log_error_errno(r, "The baseline's warm-up failed: %m");

        for (size_t b = 0; b < bursts; b++) {
                size_t first = o->devices * b / bursts, n = o->devices * (b + 1) / bursts - first;
                Phase d = { .name = "discard", .kind = KIND_UPDATE_MODEL, .path = "/updateModel", .first = first, .n = n };
                Phase u = { .name = "updateModel", .kind = KIND_UPDATE_MODEL, .path = "/updateModel", .first = first, .n = n };

                r = phase_body_update(&d, o, update, 0);
                if (r >= 0)
                        r = phase_body_update(&u, o, update, iteration);
                if (r >= 0)
                        r = phase_run(baseline, &d, true);
                if (r >= 0)
                        r = phase_run(l, &u, true);
                if (r >= 0)
                        r = phase_merge(&total_discard, &d);
                if (r >= 0)
                        r = phase_merge(&total_update, &u);
                ratios[b] = ((double) u.n / u.seconds) / ((double) d.n / d.seconds);
                phase_done(&d);
                phase_done(&u);
                if (r < 0)
                        break;
        }
        if (r >= 0) {
                phase_print(&total_discard, baseline->n_slots);
                phase_print(&total_update, l->n_slots);
                print_compare(ratios, bursts, &total_discard, &total_update);
                if (total_discard.ok != total_discard.n || total_update.ok != total_update.n)
                        r = -EPROTO;
        }
        phase_done(&total_discard);
        phase_done(&total_update);
        return r;
}

static int run_server(Loader *l, Loader *baseline, const Options *o) {
        _cleanup_(model_freep) Model *update = NULL;
        Phase admit = { .name = "startFLJob", .kind = KIND_START_FL_JOB, .path = "/startFLJob", .n = o->devices };
        Phase up = { .name = "updateModel", .kind = KIND_UPDATE_MODEL, .path = "/updateModel", .n = o->devices };
        int r;

        r = wait_ready(l, o);
        if (r < 0)
                return log_error_errno(r, "The server's rounds did not open within %us: %m", o->ready_timeout_s);

        r = phase_body_fl_job(&admit, o);
        if (r < 0)
                return log_error_errno(r, "Failed to build the startFLJob request: %m");
        r = phase_run(l, &admit, false);
        if (r < 0 || admit.ok != admit.n || admit.iteration_mixed) {
                if (admit.iteration_mixed)
                        log_error("The admissions came back for different iterations.");
                phase_done(&admit);
                return log_error_errno(r < 0 ? r : -EPROTO, "Not every device was admitted; no updates sent.");
        }

        r = update_model_new(&update, o);
        if (r < 0)
                log_error_errno(r, "Failed to build the update from %s: %m", o->model_path ?: "LeNet-5");
        else if (baseline)
                r = run_interleaved(l, baseline, o, update, admit.iteration);
        else {
                r = phase_body_update(&up, o, update, admit.iteration);
                if (r >= 0)
                        r = phase_run(l, &up, false);
                if (r >= 0 && up.ok != up.n)
                        r = -EPROTO;
        }
        if (r < 0 && r != -EPROTO)
                log_error_errno(r, "The updates failed: %m");
        phase_done(&admit);
        phase_done(&up);
        return r;
}

static int write_model(const char *path) {
        _cleanup_(model_freep) Model *m = NULL;
        int r;

        r = lenet5_init(&m, 1);
        if (r < 0)
                return log_error_errno(r, "Failed to build LeNet-5: %m");
        r = fl_model_save_file(path, m);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        return 0;
}

static void help(FILE *f, const char *program) {
        fprintf(f,
                "usage: %1$s write-model FILE\n"
                "       %1$s discard --url URL [--devices N] [--concurrency C] [--server-pid PID]\n"
                "       %1$s server --url URL [--devices N] [--concurrency C] [--server-pid PID]\n"
                "                   [--scheduler-pid PID] [--fl-name NAME] [--data-size N] [--model FILE]\n"
                "                   [--ready-timeout SECONDS]\n"
                "                   [--baseline-url URL [--baseline-pid PID] [--bursts K]] [--cacert FILE]\n"
                "       %1$s connect --url URL [--connections N] [--server-pid PID] [--cacert FILE]\n",
                program);
}

int main(int argc, char *argv[]) {
        static const struct option longopts[] = {
                { "url", required_argument, NULL, 'u' },
                { "devices", required_argument, NULL, 'n' },
                { "concurrency", required_argument, NULL, 'c' },
                { "fl-name", required_argument, NULL, 'f' },
                { "data-size", required_argument, NULL, 'd' },
                { "model", required_argument, NULL, 'm' },
                { "ready-timeout", required_argument, NULL, 'r' },
                { "server-pid", required_argument, NULL, 'p' },
                { "scheduler-pid", required_argument, NULL, 's' },
                { "baseline-url", required_argument, NULL, 'b' },
                { "baseline-pid", required_argument, NULL, 'B' },
                { "bursts", required_argument, NULL, 'k' },
                { "cacert", required_argument, NULL, 'C' },
                { "connections", required_argument, NULL, 'N' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        Options o = {
                .devices = 5000,
                .concurrency = 64,
                .fl_name = "Lenet",
                .data_size = 100,
                .ready_timeout_s = 60,
                .bursts = 10,
                .connections = 1000,
        };
        Loader l = {}, baseline = {};
        uint64_t v;
        int c, r;

        log_set_ident("bench-ingest");
        log_set_plain(true);
        if (argc >= 2 && streq(argv[1], "write-model")) {
                if (argc != 3)
                        return help(stderr, argv[0]), EXIT_FAILURE;
                return write_model(argv[2]) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (argc < 2 || (!streq(argv[1], "discard") && !streq(argv[1], "server") && !streq(argv[1], "connect")))
                return help(argc >= 2 && streq(argv[1], "--help") ? stdout : stderr, argv[0]),
                       argc >= 2 && streq(argv[1], "--help") ? EXIT_SUCCESS : EXIT_FAILURE;
        o.mode = streq(argv[1], "server") ? MODE_SERVER : streq(argv[1], "connect") ? MODE_CONNECT : MODE_DISCARD;

        optind = 2;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0)
                switch (c) {
                case 'u':
                        o.url = optarg;
                        break;
                case 'n':
                        if (safe_atou64(optarg, &v) < 0 || v < 1 || v > DEVICES_MAX)
                                return log_error("Invalid --devices '%s'.", optarg), EXIT_FAILURE;
                        o.devices = (size_t) v;
                        break;
                case 'c':
                        if (safe_atou64(optarg, &v) < 0 || v < 1 || v > 4096)
                                return log_error("Invalid --concurrency '%s'.", optarg), EXIT_FAILURE;
                        o.concurrency = (size_t) v;
                        break;
                case 'f':
                        o.fl_name = optarg;
                        break;
                case 'd':
                        if (safe_atou32(optarg, &o.data_size) < 0 || o.data_size < 1 || o.data_size > INT32_MAX)
                                return log_error("Invalid --data-size '%s'.", optarg), EXIT_FAILURE;
                        break;
                case 'm':
                        o.model_path = optarg;
                        break;
                case 'r':
                        if (safe_atou32(optarg, &o.ready_timeout_s) < 0)
                                return log_error("Invalid --ready-timeout '%s'.", optarg), EXIT_FAILURE;
                        break;
                case 'p':
                        if (safe_atou32(optarg, &o.server_pid) < 0)
                                return log_error("Invalid --server-pid '%s'.", optarg), EXIT_FAILURE;
                        break;
                case 's':
                        if (safe_atou32(optarg, &o.scheduler_pid) < 0)
                                return log_error("Invalid --scheduler-pid '%s'.", optarg), EXIT_FAILURE;
                        break;
                case 'b':
                        o.baseline_url = optarg;
                        break;
                case 'B':
                        if (safe_atou32(optarg, &o.baseline_pid) < 0)
                                return log_error("Invalid --baseline-pid '%s'.", optarg), EXIT_FAILURE;
                        break;
                case 'k':
                        if (safe_atou64(optarg, &v) < 0 || v < 1 || v > BURSTS_MAX)
                                return log_error("Invalid --bursts '%s' (1-%d).", optarg, BURSTS_MAX), EXIT_FAILURE;
                        o.bursts = (size_t) v;
                        break;
                case 'C':
                        o.cacert = optarg;
                        break;
                case 'N':
                        if (safe_atou64(optarg, &v) < 0 || v < 1 || v > 1000000)
                                return log_error("Invalid --connections '%s'.", optarg), EXIT_FAILURE;
                        o.connections = (size_t) v;
                        break;
                case 'h':
                        return help(stdout, argv[0]), EXIT_SUCCESS;
                default:
                        return EXIT_FAILURE;
                }
        if (!o.url || optind != argc)
                return help(stderr, argv[0]), EXIT_FAILURE;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error("Failed to initialize libcurl."), EXIT_FAILURE;
        if (o.mode == MODE_CONNECT) {
                r = run_connect(&o);
                curl_global_cleanup();
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        r = loader_init(&l, &o, o.url, o.mode == MODE_SERVER ? o.server_pid : (o.baseline_pid ?: o.server_pid),
                        o.scheduler_pid);
        if (r >= 0 && o.mode == MODE_SERVER && o.baseline_url)
                r = loader_init(&baseline, &o, o.baseline_url, o.baseline_pid, 0);
        if (r < 0)
                log_error_errno(r, "Failed to set up the transfers: %m");
        else if (o.mode == MODE_SERVER)
                r = run_server(&l, o.baseline_url ? &baseline : NULL, &o);
        else
                r = run_discard(&l, &o);
        loader_done(&baseline);
        loader_done(&l);
        curl_global_cleanup();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
