/*
 * kvcmd.h - the `kv ...` admin commands: the key-value store (kv.h) used
 * from inside the node, for the `farm kv` CLI. Keys and values travel in
 * hex (binary-safe on a line protocol), "-" for an empty value:
 *
 *   kv get TABLE KEY                    len, version, hex
 *   kv put TABLE KEY VAL [set|add|replace]   version   (creates TABLE)
 *   kv cas TABLE KEY VERSION VAL        version
 *   kv del TABLE KEY [VERSION]
 *   kv load TABLE KEY=VAL[,KEY=VAL...]  stored        (creates TABLE)
 *   kv scan-stats TABLE                 the table's shape (farm_kv_scan)
 *
 * Failures carry the library's code: -ENOENT for a missing key or table,
 * -EEXIST, -ECANCELED (version mismatch), -EINVAL, -ENAMETOOLONG, -EFBIG.
 */
#ifndef FARMD_KVCMD_H
#define FARMD_KVCMD_H

#include "farmd.h"

/* tok[0] == "kv"; appends one JSON reply line. */
int kv_cmd(struct farmd *d, int n, char **tok, struct sbuf *out);

#endif /* FARMD_KVCMD_H */
