/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_FIELDS_MAX 8
#define LOG_LINE_MAX 4096

static int max_level = LOG_INFO;
static const char *ident = NULL;
static char *fields[LOG_FIELDS_MAX];
static int to_journal = -1;     /* -1: not yet decided */
static int stderr_is_tty = -1;
static bool plain = false;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_parse_level(const char *s) {
        static const char *const names[] = {
                "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        return -EINVAL;
}

void log_set_plain(bool b) {
        plain = b;
}

void log_set_ident(const char *i) {
        ident = i;
}

int log_set_field(const char *name, const char *value) {
        size_t n = strlen(name);
        char *f;

        if (asprintf(&f, "%s=%s", name, value) < 0)
                return -ENOMEM;

        for (size_t i = 0; i < LOG_FIELDS_MAX; i++)
                if (fields[i] && strneq(fields[i], name, n) && fields[i][n] == '=') {
                        free(fields[i]);
                        fields[i] = f;
                        return 0;
                }
        for (size_t i = 0; i < LOG_FIELDS_MAX; i++)
                if (!fields[i]) {
                        fields[i] = f;
                        return 0;
                }
        free(f);
        return -E2BIG;
}

/* journald connects our stderr and says so in JOURNAL_STREAM="dev:inode";
 * only then is a direct journal entry the same destination. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

static void write_journal(int level, const char *file, int line, const char *func,
                          const char *const *extra, const char *msg) {
        char prio[32], code_file[256], code_line[32], code_func[128], syslog_id[128];
        struct iovec iov[8 + LOG_FIELDS_MAX + 16];
        _cleanup_free_ char *message = NULL;
        size_t n = 0;

        if (asprintf(&message, "MESSAGE=%s", msg) < 0)
                return;
        snprintf(prio, sizeof prio, "PRIORITY=%d", level);
        snprintf(code_file, sizeof code_file, "CODE_FILE=%s", file);
        snprintf(code_line, sizeof code_line, "CODE_LINE=%d", line);
        snprintf(code_func, sizeof code_func, "CODE_FUNC=%s", func);

#define ADD(s) iov[n++] = (struct iovec) { .iov_base = (char *) (s), .iov_len = strlen(s) }
        ADD(message);
        ADD(prio);
        ADD(code_file);
        ADD(code_line);
        ADD(code_func);
        if (ident) {
                snprintf(syslog_id, sizeof syslog_id, "SYSLOG_IDENTIFIER=%s", ident);
                ADD(syslog_id);
        }
        for (size_t i = 0; i < LOG_FIELDS_MAX; i++)
                if (fields[i])
                        ADD(fields[i]);
        for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(iov); i++)
                ADD(extra[i]);
#undef ADD

        (void) sd_journal_sendv(iov, (int) n);
}

static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                        const char *const *extra, const char *format, va_list ap) {
        char buf[LOG_LINE_MAX];
        int saved_errno = errno;

        error = abs(error);
        errno = error;  /* makes %m print the error we were given */
        (void) vsnprintf(buf, sizeof buf, format, ap);

        if (to_journal < 0)
                to_journal = stderr_is_journal();
        if (stderr_is_tty < 0)
                stderr_is_tty = isatty(STDERR_FILENO);

        if (to_journal)
                write_journal(level, file, line, func, extra, buf);
        else if (stderr_is_tty || plain)
                fprintf(stderr, "%s\n", buf);
        else
                fprintf(stderr, "<%d>%s\n", level, buf);

        errno = saved_errno;
        return -error;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, NULL, format, ap);
        va_end(ap);
        return r;
}

int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *const *extra, const char *format, ...) {
        va_list ap;
        int r;

        if (level > max_level)
                return -abs(error);

        va_start(ap, format);
        r = log_dispatch(level, error, file, line, func, extra, format, ap);
        va_end(ap);
        return r;
}
