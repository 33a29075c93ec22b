/* num: strict base-10 integers from text (a flag, a query parameter, a
 * header, a setting). The whole string must be the number: no sign on the
 * unsigned form, no leading blanks, nothing after it, no overflow; "", NULL
 * and "12abc" fail. A caller that allows trailing blanks (an HTTP header)
 * strips them first. */
#ifndef KV_NUM_H
#define KV_NUM_H

#include <stdint.h>

/* "-12" .. "34": 0, or -1 when s is not one int64. */
int num_parse_i64(const char *s, int64_t *out);
/* "0" .. "18446744073709551615", digits only: 0 or -1. */
int num_parse_u64(const char *s, uint64_t *out);
/* num_parse_u64 within [0, max]: 0 or -1. */
int num_parse_max(const char *s, uint64_t max, uint64_t *out);

#endif
