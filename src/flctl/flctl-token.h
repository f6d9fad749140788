/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "flctl-args.h"

/* flctl's side of the management tokens (docs/management-api.md,
 * "Authentication"): the token it sends over REST, read from --token-file
 * (or $FLCTL_TOKEN_FILE), and `flctl token create`. */

/* The token a token file holds: one line (a final newline is fine), no
 * blanks around it, only the characters a Bearer token may have.
 * -EINVAL when it is not that, -ENOMEM. */
int flctl_token_parse(const char *text, size_t size, char **ret);
/* Reads and parses path; logs why it cannot, naming the file. */
int flctl_token_read(const char *path, char **ret);

/* token create --role ROLE --into FILE: a new token, its entry appended to
 * FILE (created 0600, or 0640 root:flcluster when root makes it and the
 * group exists, so that fl-schedulerd's account can read it), the token
 * printed once on stdout. Refuses to append to a file that is not a valid
 * token file. Logs its failures. */
int flctl_token_create(const FlctlOptions *o);
/* The checks of the command line, before anything is touched. */
int flctl_token_create_check(const FlctlOptions *o);
