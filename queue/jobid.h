/* jobid: a job's public name. GET /jobs/{id} shows a job's key and
 * operation to whoever names it, so the name must not be guessable: 128
 * bits from the kernel's CSPRNG (getrandom(2)), written as exactly 32
 * lowercase hex digits. It is not the job's version (an HLC timestamp:
 * anyone who knows the clock, or one of their own writes, could count
 * through those); the version stays a field of its own.
 * Values only, no ownership. */
#ifndef KV_QUEUE_JOBID_H
#define KV_QUEUE_JOBID_H

#include <stddef.h>
#include <stdint.h>

#define JOBID_BYTES 16
#define JOBID_TEXT (2 * JOBID_BYTES) /* hex digits, without the NUL */

typedef struct jobid {
    uint8_t b[JOBID_BYTES];
} jobid;

/* n fresh ids from getrandom(2). 0, or -1 (errno set) when the kernel
 * gives no random bytes: ids are never made up from anything weaker. */
int jobid_new(jobid *ids, size_t n);
/* The 32 hex digits and a NUL into out. */
void jobid_format(const jobid *id, char out[JOBID_TEXT + 1]);
/* Exactly JOBID_TEXT lowercase hex digits in s[0..len) into *out: 0, or -1
 * for anything else (another length, upper case, any other byte). */
int jobid_parse(const char *s, size_t len, jobid *out);
int jobid_equal(const jobid *a, const jobid *b);
/* For hash tables: the bits are random already. */
uint64_t jobid_hash(const jobid *id);

#endif
