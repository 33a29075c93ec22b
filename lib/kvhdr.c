#include "kvhdr.h"

#include "num.h"

#include <inttypes.h>
#include <stdio.h>

const char *kvhdr_epoch(char *buf, size_t len, uint64_t epoch)
{
    snprintf(buf, len, KVHDR_EPOCH ": %" PRIu64, epoch);
    return buf;
}

const char *kvhdr_auth(char *buf, size_t len, const char *token)
{
    if (token == NULL || token[0] == '\0')
        buf[0] = '\0';
    else
        snprintf(buf, len, "Authorization: Bearer %s", token);
    return buf;
}

int kvhdr_u64(const httpc_resp *resp, const char *name, uint64_t *out)
{
    char buf[32];

    /* httpc_resp_header trims the blanks around the value. */
    if (httpc_resp_header(resp, name, buf, sizeof buf) == NULL)
        return -1;
    return num_parse_u64(buf, out);
}
