/*
 * kvbench.h - `bench kv`: the key-value table read by FaRM's own client from
 * inside the node (one-sided reads through kv.h), with the key space, key
 * and value sizes and distributions kvload gives memcached-protocol servers
 * (tools/kvload/keygen.h), so bench/kv-vs-peers.sh compares like with like.
 *
 *   bench kv load KEYS KSIZE:VSIZE FIRST COUNT
 *       store keys FIRST..FIRST+COUNT-1 of a KEYS-key space in table
 *       "kvbench-VSIZE" (created with room for KEYS keys)
 *   bench kv get KEYS KSIZE:VSIZE THETA SECONDS [DEPTH]
 *       GETs for SECONDS (THETA 0: uniform keys, else Zipf THETA), DEPTH
 *       lookups per farm_kv_mget batch (1: farm_kv_get), one JSON line:
 *       ops, ops_per_sec, hits, misses, errors, p50_ns, p99_ns
 */
#ifndef FARMD_KVBENCH_H
#define FARMD_KVBENCH_H

#include "farmd.h"

/* tok[0] == "bench", tok[1] == "kv"; appends one JSON reply line. */
int kvbench_cmd(struct farmd *d, int n, char **tok, struct sbuf *out);

#endif /* FARMD_KVBENCH_H */
