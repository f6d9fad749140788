/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "flctl-output.h"
#include "flctl-token.h"
#include "log.h"
#include "token.h"
#include "util.h"

#define TOKEN_FILE_READ_MAX 4096U
#define SCHEDULER_GROUP "flcluster"

/* RFC 6750's b64token: what may follow "Bearer ". */
static const char token_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

int flctl_token_parse(const char *text, size_t size, char **ret) {
        size_t n = size, k;
        char *copy;

        if (n > 0 && text[n - 1] == '\n')
                n--;
        if (n == 0 || n > TOKEN_PRESENTED_MAX || memchr(text, '\n', n))
                return -EINVAL;
        k = strspn(text, token_chars);
        while (k < n && text[k] == '=')
                k++;
        if (k != n)
                return -EINVAL;
        copy = strndup(text, n);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int flctl_token_read(const char *path, char **ret) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t size;
        int r;

        r = read_full_file(path, &text, &size, TOKEN_FILE_READ_MAX);
        if (r == -EFBIG)
                return log_error_errno(r, "The token file %s is too large to hold a token.", path);
        if (r < 0)
                return log_error_errno(r, "Failed to read the token file %s: %m", path);
        r = flctl_token_parse(text, size, ret);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "The token file %s does not hold a token: expected one line as "
                                       "'%s token create' printed it.", path, program_invocation_short_name);
        if (stat(path, &st) >= 0 && (st.st_mode & S_IROTH))
                log_warning("The token file %s is readable by every user; chmod o-r it.", path);
        return 0;
}

int flctl_token_create_check(const FlctlOptions *o) {
        if (!o->role)
                return log_error_errno(-EINVAL, "'token create' needs --role operator or --role reader. "
                                       "See '%s --help'.", program_invocation_short_name);
        if (token_role_from_string(o->role) < 0)
                return log_error_errno(-EINVAL, "Invalid role '%s': expected operator or reader.", o->role);
        if (!o->into)
                return log_error_errno(-EINVAL, "'token create' needs --into FILE (the scheduler's "
                                       "management_token_file). See '%s --help'.", program_invocation_short_name);
        return 0;
}

/* A new file, readable by the account fl-schedulerd runs as under systemd
 * when root makes it, else by its owner only. */
static int token_file_create(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct group *g;

        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        if (geteuid() == 0 && (g = getgrnam(SCHEDULER_GROUP))) {
                if (fchown(fd, 0, g->gr_gid) < 0 || fchmod(fd, 0640) < 0)
                        return log_error_errno(-errno, "Failed to give %s to root:%s, mode 0640: %m", path,
                                               SCHEDULER_GROUP);
        }
        return TAKE_FD(fd);
}

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, s, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

int flctl_token_create(const FlctlOptions *o) {
        _cleanup_(token_table_done) TokenTable t = {};
        _cleanup_free_ char *old = NULL, *out = NULL;
        _cleanup_close_ int fd = -EBADF;
        char token[TOKEN_STRING_MAX], entry[TOKEN_ENTRY_MAX], when[64], error[256] = "";
        TokenRole role = token_role_from_string(o->role);
        bool created = false;
        struct stat st;
        size_t size;
        time_t now = time(NULL);
        struct tm tm;
        int r;

        fd = open(o->into, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                fd = token_file_create(o->into);
                created = fd >= 0;
        }
        if (fd < 0)
                return log_error_errno(fd == -EBADF ? negative_errno() : fd, "Failed to open %s: %m", o->into);
        /* Two operators adding tokens at once each get a line of their own. */
        if (flock(fd, LOCK_EX) < 0)
                return log_error_errno(-errno, "Failed to lock %s: %m", o->into);
        if (fstat(fd, &st) < 0)
                return log_error_errno(-errno, "Failed to check %s: %m", o->into);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(-EBADFD, "%s is not a regular file.", o->into);
        if (st.st_mode & S_IWOTH)
                return log_error_errno(-EPERM, "%s is writable by every user; fl-schedulerd refuses such a file. "
                                       "chmod o-w it first.", o->into);

        /* Never append to something the scheduler would refuse as a whole. */
        r = read_full_file(o->into, &old, &size, TOKEN_FILE_MAX);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", o->into);
        r = token_table_parse(old, size, &t, error, sizeof error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "%s is not a valid token file (%s); not adding to it.", o->into, error);

        r = token_generate(token);
        if (r < 0)
                return log_error_errno(r, "Failed to get random bytes for a token: %m");
        r = token_entry_format(role, token, entry);
        if (r < 0)
                return log_error_errno(r, "Failed to hash the new token: %m");
        if (!gmtime_r(&now, &tm) || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                strcpy(when, "?");
        if (asprintf(&out, "%s# %s token added %s by %s token create\n%s",
                     size > 0 && old[size - 1] != '\n' ? "\n" : "", o->role, when, program_invocation_short_name,
                     entry) < 0)
                return log_oom();
        r = write_all(fd, out, strlen(out));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return log_error_errno(r, "Failed to write to %s: %m", o->into);

        if (o->json) {
                _cleanup_free_ char *text = NULL;

                if (token_format_json(token, o->role, o->into, &text) < 0)
                        return log_oom();
                fputs(text, stdout);
        } else
                puts(token);
        explicit_bzero(token, sizeof token);
        log_info("Added %s %s token to %s%s, which holds %zu now. fl-schedulerd takes it once it reads the file "
                 "again: systemctl reload fl-schedulerd (or kill -HUP its pid).",
                 role == TOKEN_ROLE_OPERATOR ? "an" : "a", o->role, o->into, created ? " (a new file)" : "", t.n + 1);
        return 0;
}
