/* json_whole: a buffer that must hold exactly one JSON value, with only
 * whitespace around it: the configuration file, the topology and the lab's
 * student_config.json. cJSON_ParseWithLength stops after the first value
 * and ignores the rest, so "{...} {...}" or "{...}}" was accepted with the
 * second part silently dropped (found writing tests/fuzz's config round
 * trip).
 *
 * Ownership: the caller frees the tree with cJSON_Delete. */
#ifndef KV_JSON_WHOLE_H
#define KV_JSON_WHOLE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* text[0..len) as one JSON value, or NULL when it is not valid JSON or
 * anything but whitespace follows the value; *end (optional) then points
 * at the offending byte (as far as cJSON tells). */
cJSON *json_whole_parse(const char *text, size_t len, const char **end);

#endif
