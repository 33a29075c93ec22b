/* precond: a write's precondition from HTTP's If-Match / If-None-Match
 * headers (RFC 9110 13.1), as lib/wire.h carries it. Versions are the
 * entity tags: GET answers ETag: "<version>".
 *   If-Match: "<version>"   WIRE_F_IF_MATCH: only if the live record is at
 *                           that version (strong comparison)
 *   If-Match: *             WIRE_F_IF_EXISTS: only if the key has one
 *   If-None-Match: *        WIRE_F_IF_ABSENT: only if it has none (create)
 * Whitespace around a value is allowed. Refused (so the caller answers 400
 * rather than guess): both headers at once, a list of tags, a weak tag
 * (W/"..."), an unquoted or empty tag, a tag that is not a version (digits,
 * 1 to 2^53 - 1), and If-None-Match with anything but *.
 * Pure: no I/O, no allocation. */
#ifndef KV_PRECOND_H
#define KV_PRECOND_H

#include <stdint.h>

/* The message of every 412 precondition_failed (store, queue, api). */
#define PRECOND_FAILED_MSG                                                     \
    "the key is not in the state the write's If-Match / If-None-Match requires"

/* Either header may be NULL (absent). On 0, *flags is the condition (0:
 * none) and *version the If-Match version (0 unless WIRE_F_IF_MATCH); on
 * -1, *why (optional) is a sentence for the 400 and nothing is set. */
int precond_parse(const char *if_match, const char *if_none_match,
                  uint8_t *flags, uint64_t *version, const char **why);

#endif
