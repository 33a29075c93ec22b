/* addr: where the controller reaches each node it watches.
 *
 * A node's URL is http://<host>:<port>. The port comes from the port layout
 * of kv_config (config_store_port, config_queue_port, ...); the host from
 * cluster.advertise_host, a template in which {name} (store-0-1, queue,
 * api-0), {kind} (store, queue, api, nginx), {shard} and {replica} (the
 * store's numbers; -1 for other kinds) are filled in. An empty template is
 * the address others reach cluster.bind on (127.0.0.1 for 0.0.0.0 or "").
 *
 * The local cluster leaves the template empty (every process on one host);
 * the compose deployment sets it to {name}, the service name of each
 * container, so the topology lists http://store-0-1:7101 and
 * http://queue:7001. The stores find themselves in that topology by their
 * port (store/role.c), which the layout keeps distinct within a shard.
 *
 * Ownership: no allocation; every result goes to a caller's buffer. */
#ifndef KV_CTL_ADDR_H
#define KV_CTL_ADDR_H

#include <stddef.h>
#include <stdint.h>

/* What a template is expanded for. */
typedef struct addr_node {
    const char *name;   /* "store-0-1" */
    const char *kind;   /* "store" */
    int shard, replica; /* -1 unless a store */
} addr_node;

/* Expand tmpl (NULL or "": the advertise address of bind) into out. The
 * result must be a non-empty host name or address: letters, digits and
 * ".-_:[]" only. 0, or -1 with err saying why (unknown or unterminated
 * placeholder, a bad character, too long). */
int addr_host(const char *tmpl, const char *bind, const addr_node *n,
              char *out, size_t outlen, char *err, size_t errlen);

/* http://<addr_host>:<port> into out. 0 or -1 + err. */
int addr_url(const char *tmpl, const char *bind, const addr_node *n,
             uint16_t port, char *out, size_t outlen, char *err,
             size_t errlen);

/* Check a template once for every kind of node (the controller does this
 * at start, so that a typo stops it with a message naming the field).
 * 0 or -1 + err. */
int addr_check_template(const char *tmpl, char *err, size_t errlen);

#endif
