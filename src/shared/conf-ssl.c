/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <string.h>

#include "conf.h"
#include "util.h"

/* The "ssl" section of the configuration file, with MindSpore's key names.
 * Whether the files exist and hold what they should is checked when the
 * daemon loads them (tls.c), so that a reload reports it the same way. */

#define REFUSE(r, ...) (snprintf(error, size, __VA_ARGS__), (r))

#define WARNING_DAYS_MIN 7U     /* MindSpore's bounds */
#define WARNING_DAYS_MAX 180U
#define CHECK_HOURS_MAX (24U * 365U)

typedef struct SslKey {
        const char *name;
        size_t offset;
} SslKey;

#define SSL_STRING(n) { #n, offsetof(SslConfig, n) }

static const SslKey ssl_strings[] = {
        SSL_STRING(server_cert_path),
        SSL_STRING(server_key_path),
        SSL_STRING(server_password),
        SSL_STRING(client_cert_path),
        SSL_STRING(client_key_path),
        SSL_STRING(client_password),
        SSL_STRING(ca_cert_path),
        SSL_STRING(crl_path),
        SSL_STRING(cipher_list),
};

void conf_ssl_done(SslConfig *s) {
        for (size_t i = 0; i < ELEMENTSOF(ssl_strings); i++) {
                char **p = (char **) ((uint8_t *) s + ssl_strings[i].offset);

                /* The passwords too: nothing of them stays in freed memory. */
                if (*p)
                        explicit_bzero(*p, strlen(*p));
                *p = mfree(*p);
        }
}

static int ssl_set_u32(const char *key, json_object *value, uint32_t min, uint32_t max, uint32_t *ret,
                       char *error, size_t size) {
        int64_t v;

        if (!json_object_is_type(value, json_type_int))
                return REFUSE(-EINVAL, "The value of ssl.%s must be an integer.", key);
        v = json_object_get_int64(value);
        if (v < min || v > max)
                return REFUSE(-ERANGE, "Invalid value for ssl.%s: %" PRIi64 " is outside %u..%u.", key, v, min, max);
        *ret = (uint32_t) v;
        return 0;
}

static int ssl_set_string(SslConfig *s, const SslKey *k, json_object *value, char *error, size_t size) {
        char **p = (char **) ((uint8_t *) s + k->offset);
        const char *v;

        if (!json_object_is_type(value, json_type_string))
                return REFUSE(-EINVAL, "The value of ssl.%s must be a string.", k->name);
        v = json_object_get_string(value);
        free(*p);
        *p = NULL;
        /* MindSpore writes "crl_path": "" for none: an empty string is an unset key. */
        if (isempty(v))
                return 0;
        if (strlen(v) >= 4096)
                return REFUSE(-EINVAL, "Invalid value for ssl.%s: it is too long.", k->name);
        *p = strdup(v);
        return *p ? 0 : REFUSE(-ENOMEM, "Out of memory.");
}

int conf_apply_ssl(FlConfig *c, json_object *section, char *error, size_t size) {
        _cleanup_(conf_ssl_done) SslConfig s = {
                .cert_expire_warning_time_in_day = CONF_SSL_DEFAULT_WARNING_DAYS,
                .cert_check_interval_in_hour = CONF_SSL_DEFAULT_CHECK_HOURS,
        };
        SslConfig old;
        int r;

        if (!json_object_is_type(section, json_type_object))
                return REFUSE(-EINVAL, "The value of ssl must be a JSON object.");

        json_object_object_foreach(section, key, value) {
                const SslKey *k = NULL;

                for (size_t i = 0; i < ELEMENTSOF(ssl_strings) && !k; i++)
                        if (streq(ssl_strings[i].name, key))
                                k = &ssl_strings[i];
                if (k)
                        r = ssl_set_string(&s, k, value, error, size);
                else if (streq(key, "cert_expire_warning_time_in_day"))
                        r = ssl_set_u32(key, value, WARNING_DAYS_MIN, WARNING_DAYS_MAX,
                                        &s.cert_expire_warning_time_in_day, error, size);
                else if (streq(key, "cert_check_interval_in_hour"))
                        r = ssl_set_u32(key, value, 1, CHECK_HOURS_MAX, &s.cert_check_interval_in_hour, error, size);
                else
                        r = REFUSE(-ENOENT, "Unknown key '%s' in ssl (known: server_cert_path, server_key_path, "
                                   "server_password, client_cert_path, client_key_path, client_password, "
                                   "ca_cert_path, crl_path, cipher_list, cert_expire_warning_time_in_day, "
                                   "cert_check_interval_in_hour).", key);
                if (r < 0)
                        return r;
        }

        /* A key file belongs to its certificate: one without the other is a typo. */
        if (s.client_key_path && !s.client_cert_path)
                return REFUSE(-EINVAL, "ssl.client_key_path is set without ssl.client_cert_path.");

        old = c->ssl;
        c->ssl = s;
        s = old;        /* freed on the way out */
        return 0;
}
