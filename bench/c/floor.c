/* floor.c -- what one more B-tree entry costs a commit on liblmdb (no pystore).
 * Prototype for docs/performance.md: single-record upserts of ~1 KB into a
 * "resources" db, each its own commit (MDB_NOSYNC, no writemap), with
 *   LAYOUT none|dup|plain: no index entries, or moving an owner and a phase
 *     entry (2 deletes + 2 inserts) in a dupsort index db (pystore's layout)
 *     or in a plain db with the id in the key;
 *   LOG 0|1|2: no change-log entry, one appended to a "changes" db, or one
 *     appended to the resources db itself (under a 0xff prefix).
 * usage: floor DIR LAYOUT LOG N OPS changed|same   (DIR must exist; the first
 * run loads N records; later runs reuse them).  Count the writes per commit
 * with: strace -c -e trace=pwrite64,writev ./floor ... */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#define CK(x) do { int rc_ = (x); if (rc_) { fprintf(stderr, "%s:%d %s\n", #x, __LINE__, mdb_strerror(rc_)); exit(1);} } while (0)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int N, OWNERS, dup;
static MDB_dbi res, idx, chg;
static size_t ekey(char *out, unsigned id, const char *val, const char *rid)
{
    out[0] = 0; out[1] = 0; out[2] = 0; out[3] = (char)id;
    size_t vl = strlen(val), n = 4;
    if (!dup) { out[n++] = 0; out[n++] = (char)(vl + 1); }
    out[n++] = 0; memcpy(out + n, val, vl); n += vl;
    if (!dup && rid) { size_t rl = strlen(rid); memcpy(out + n, rid, rl); n += rl; }
    return n;
}
static void eput(MDB_txn *t, unsigned id, const char *val, const char *rid, int del)
{
    char k[512]; MDB_val kv = {ekey(k, id, val, rid), k};
    MDB_val dv = dup ? (MDB_val){strlen(rid), (void *)rid} : (MDB_val){0, ""};
    if (del) { int rc = mdb_del(t, idx, &kv, dup ? &dv : NULL); if (rc && rc != MDB_NOTFOUND) CK(rc); }
    else CK(mdb_put(t, idx, &kv, &dv, dup ? MDB_NODUPDATA : 0));
}
static void entries(MDB_txn *t, int i, int owner, int phase, int del)
{
    char rid[32], v[64]; snprintf(rid, sizeof rid, "agt-%06d", i);
    snprintf(v, sizeof v, "owner-%05d", owner); eput(t, 2, v, rid, del);
    snprintf(v, sizeof v, "phase%d", phase); eput(t, 3, v, rid, del);
}
int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: floor DIR none|dup|plain 0|1|2 N OPS changed|same\n");
        return 2;
    }
    const char *dir = argv[1]; dup = !strcmp(argv[2], "dup"); int none = !strcmp(argv[2], "none");
    int log = atoi(argv[3]); N = atoi(argv[4]); OWNERS = N / 100; int ops = atoi(argv[5]);
    int changed = !strcmp(argv[6], "changed");
    MDB_env *env; CK(mdb_env_create(&env)); CK(mdb_env_set_mapsize(env, 4ull << 30)); CK(mdb_env_set_maxdbs(env, 8));
    CK(mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS, 0600));
    MDB_txn *t; CK(mdb_txn_begin(env, NULL, 0, &t));
    CK(mdb_dbi_open(t, "resources", MDB_CREATE, &res)); CK(mdb_dbi_open(t, "changes", MDB_CREATE, &chg));
    CK(mdb_dbi_open(t, "index", MDB_CREATE | (dup ? MDB_DUPSORT : 0), &idx));
    MDB_stat st; CK(mdb_stat(t, res, &st)); int fresh = st.ms_entries == 0;
    char val[1100]; memset(val, 'x', sizeof val);
    int *own = calloc(N, sizeof *own), *ph = calloc(N, sizeof *ph);
    for (int i = 0; i < N; i++) { own[i] = i % OWNERS; ph[i] = i % 3; }
    if (fresh) {
        for (int i = 0; i < N; i++) {
            char k[64]; int kl = snprintf(k, sizeof k, "Agent/agt-%06d", i);
            MDB_val kv = {kl, k}, vv = {sizeof val, val}; CK(mdb_put(t, res, &kv, &vv, 0));
            if (!none) { char rid[32], v[64]; snprintf(rid, sizeof rid, "agt-%06d", i); snprintf(v, sizeof v, "slug-%06d", i);
                eput(t, 1, v, rid, 0); entries(t, i, own[i], ph[i], 0); }
        }
    }
    CK(mdb_txn_commit(t));
    char sp[512]; snprintf(sp, sizeof sp, "%s/state", dir);
    FILE *sf = fopen(sp, "rb"); if (sf) { if (fread(own, sizeof *own, N, sf) != (size_t)N || fread(ph, sizeof *ph, N, sf) != (size_t)N) exit(2); fclose(sf); }
    uint64_t rev = 1; srand(3);
    { MDB_txn *rt; CK(mdb_txn_begin(env, NULL, MDB_RDONLY, &rt)); MDB_cursor *c; CK(mdb_cursor_open(rt, chg, &c)); MDB_val a, b;
      if (log == 2) { mdb_cursor_close(c); CK(mdb_cursor_open(rt, res, &c)); }
      if (!mdb_cursor_get(c, &a, &b, MDB_LAST) && (log != 2 || ((unsigned char *)a.mv_data)[0] == 0xff)) { if (log == 2) a.mv_data = (char *)a.mv_data + 1; rev = 0; for (int x = 0; x < 8; x++) rev = rev << 8 | ((unsigned char *)a.mv_data)[x]; rev++; }
      mdb_cursor_close(c); mdb_txn_abort(rt); }
    double t0 = now();
    for (int n = 0; n < ops; n++) {
        int i = rand() % N; CK(mdb_txn_begin(env, NULL, 0, &t));
        char k[64]; int kl = snprintf(k, sizeof k, "Agent/agt-%06d", i);
        MDB_val kv = {kl, k}, old; if (!none) CK(mdb_get(t, res, &kv, &old));
        MDB_val vv = {sizeof val, NULL}; CK(mdb_put(t, res, &kv, &vv, MDB_RESERVE)); memcpy(vv.mv_data, val, sizeof val);
        if (!none && changed) {
            entries(t, i, own[i], ph[i], 1);
            own[i] = (own[i] + 1 + rand() % 7) % OWNERS; ph[i] = (ph[i] + 1) % 3;
            entries(t, i, own[i], ph[i], 0);
        }
        if (log) { char ck[12]; for (int b = 0; b < 8; b++) ck[b] = (char)((rev + n) >> (56 - 8 * b)); memset(ck + 8, 0, 4);
            char cv[64]; memset(cv, 0, 16); memcpy(cv + 16, k, kl);
            MDB_val ckv = {12, ck}, cvv = {16 + kl, cv};
            if (log == 2) { char k2[13]; k2[0] = (char)0xff; memcpy(k2 + 1, ck, 12); MDB_val k2v = {13, k2}; CK(mdb_put(t, res, &k2v, &cvv, MDB_APPEND)); }
            else CK(mdb_put(t, chg, &ckv, &cvv, MDB_APPEND)); }
        CK(mdb_txn_commit(t));
    }
    double dt = now() - t0;
    sf = fopen(sp, "wb"); fwrite(own, sizeof *own, N, sf); fwrite(ph, sizeof *ph, N, sf); fclose(sf);
    printf("%s log=%d %s: %.2f us/commit\n", argv[2], log, argv[6], dt / ops * 1e6);
    return 0;
}
