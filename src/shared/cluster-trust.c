/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster-trust.h"
#include "log.h"
#include "util.h"

struct ClusterTrust {
        sd_event *event;
        const FlConfig *config;
        TlsMaterial *tls;
        ClusterSecret *secret;
        sd_event_source *expiry_timer;
};

static int trust_load(const FlConfig *c, TlsMaterial **ret_tls, ClusterSecret **ret_secret) {
        _cleanup_(tls_material_unrefp) TlsMaterial *tls = NULL;
        _cleanup_(cluster_secret_freep) ClusterSecret *secret = NULL;
        char error[512];
        int r;

        if (c->enable_ssl) {
                r = tls_material_load(&c->ssl, &tls, error, sizeof error);
                if (r < 0)
                        return log_error_errno(r, "TLS (enable_ssl): %s", error);
        }
        if (c->cluster_secret_file) {
                r = cluster_secret_load(c->cluster_secret_file, &secret, error, sizeof error);
                if (r < 0)
                        return log_error_errno(r, "%s", error);
                if (secret->world_readable)
                        log_warning("The cluster_secret_file %s can be read by every user of this host; "
                                    "chmod o-r it.", c->cluster_secret_file);
        }
        *ret_tls = TAKE_PTR(tls);
        *ret_secret = TAKE_PTR(secret);
        return 0;
}

static void format_date(time_t t, char buf[static 32]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
                snprintf(buf, 32, "?");
}

void cluster_trust_check_expiry(ClusterTrust *t) {
        const TlsExpiry *e;
        time_t now = time(NULL);
        size_t n;

        if (!t->tls)
                return;
        n = tls_material_expiry(t->tls, &e);
        for (size_t i = 0; i < n; i++) {
                int64_t days = ((int64_t) e[i].when - (int64_t) now) / 86400;
                char date[32], field[64];

                if (days >= (int64_t) t->config->ssl.cert_expire_warning_time_in_day)
                        continue;
                format_date(e[i].when, date);
                snprintf(field, sizeof field, "FL_CERT_EXPIRES=%s", date);
                if (streq(e[i].key, "crl_path")) {
                        if (e[i].when <= now)
                                log_struct(LOG_ERR, FIELDS(field), "The CRL (ssl.crl_path) was due for its next update "
                                           "on %s: certificates can no longer be checked against it. Publish a new "
                                           "CRL and reload (systemctl reload).", date);
                        else
                                log_struct(LOG_WARNING, FIELDS(field), "The CRL (ssl.crl_path) is due for its next "
                                           "update in %" PRIi64 " days, on %s: publish a new one and reload "
                                           "(systemctl reload).", days, date);
                        continue;
                }
                if (e[i].when <= now)
                        log_struct(LOG_ERR, FIELDS(field), "%s (ssl.%s%s%s) passed its date on %s: peers refuse "
                                   "it. Replace it and reload (systemctl reload).", e[i].what, e[i].key,
                                   e[i].subject[0] ? ", " : "", e[i].subject, date);
                else
                        log_struct(LOG_WARNING, FIELDS(field), "%s (ssl.%s%s%s) expires in %" PRIi64 " days, on %s "
                                   "(warning from %u days on): replace it and reload (systemctl reload).",
                                   e[i].what, e[i].key, e[i].subject[0] ? ", " : "", e[i].subject, days, date,
                                   t->config->ssl.cert_expire_warning_time_in_day);
        }
}

static int on_expiry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ClusterTrust *t = userdata;

        cluster_trust_check_expiry(t);
        (void) sd_event_source_set_time_relative(s, (uint64_t) t->config->ssl.cert_check_interval_in_hour * 3600U *
                                                 USEC_PER_SEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void log_material(const ClusterTrust *t, const char *verb) {
        if (t->tls)
                log_info("%s the TLS material: certificate serial %s (SHA-256 %s), CA %s%s%s, priorities %s.", verb,
                         tls_material_serial(t->tls), tls_material_fingerprint(t->tls), t->config->ssl.ca_cert_path,
                         t->config->ssl.crl_path ? ", CRL " : "", t->config->ssl.crl_path ?: "",
                         tls_material_priority_string(t->tls));
        if (t->secret)
                log_info("%s the cluster secret from %s.", verb, t->config->cluster_secret_file);
}

int cluster_trust_new(ClusterTrust **ret, sd_event *e, const FlConfig *c) {
        _cleanup_(cluster_trust_freep) ClusterTrust *t = NULL;
        int r;

        t = calloc(1, sizeof *t);
        if (!t)
                return log_oom();
        t->event = sd_event_ref(e);
        t->config = c;
        r = trust_load(c, &t->tls, &t->secret);
        if (r < 0)
                return -EINVAL;
        log_material(t, "Loaded");
        if (t->tls) {
                cluster_trust_check_expiry(t);
                r = sd_event_add_time_relative(e, &t->expiry_timer, CLOCK_MONOTONIC,
                                               (uint64_t) c->ssl.cert_check_interval_in_hour * 3600U * USEC_PER_SEC,
                                               USEC_PER_SEC * 60, on_expiry_timer, t);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the certificate expiry check: %m");
                (void) sd_event_source_set_description(t->expiry_timer, "tls-expiry");
        }
        *ret = TAKE_PTR(t);
        return 0;
}

ClusterTrust *cluster_trust_free(ClusterTrust *t) {
        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->expiry_timer);
        tls_material_unref(t->tls);
        cluster_secret_free(t->secret);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}

int cluster_trust_reload(ClusterTrust *t) {
        TlsMaterial *tls = NULL;
        ClusterSecret *secret = NULL;
        int r;

        if (!t->config->enable_ssl && !t->config->cluster_secret_file)
                return 0;
        r = trust_load(t->config, &tls, &secret);
        if (r < 0) {
                log_error("Reload failed: new connections keep the TLS material and cluster secret loaded before.");
                return r;
        }
        /* The running sessions hold their own references. */
        tls_material_unref(t->tls);
        t->tls = tls;
        cluster_secret_free(t->secret);
        t->secret = secret;
        log_material(t, "Reloaded");
        cluster_trust_check_expiry(t);
        return 0;
}

TlsMaterial *cluster_trust_tls(const ClusterTrust *t) {
        return t ? t->tls : NULL;
}

bool cluster_trust_has_secret(const ClusterTrust *t) {
        return t && t->secret;
}

int cluster_trust_secure(ClusterTrust *t, Conn *c, bool accepting, const char *peer_host) {
        int r;

        if (!t)
                return 0;
        if (t->tls) {
                r = conn_start_tls(c, t->tls, accepting, accepting ? NULL : peer_host);
                if (r < 0)
                        return r;
        }
        if (t->secret) {
                r = conn_start_secret(c, t->secret, accepting);
                if (r < 0)
                        return r;
        }
        return 0;
}

void cluster_trust_check_name(const ClusterTrust *t, const char *host, const char *what) {
        if (t && t->tls && host && !tls_material_names(t->tls, host))
                log_warning("The certificate of ssl.server_cert_path does not name %s (%s), the address the other "
                            "nodes reach this one at: they will refuse it. Issue one for it (flctl tls init "
                            "--hosts %s,...).", host, what, host);
}
