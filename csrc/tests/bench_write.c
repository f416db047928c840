/* bench_write.c -- the C core's cost per single-record write, beside raw LMDB.
 *
 * Loops ps_fw_save (with a strip plan, as the Python layer passes one) and
 * ps_fw_del on a store of 10,000 records of ~1.1 KB, and the same puts and
 * deletes on a plain LMDB environment with one named database (12-byte
 * header + payload per value: the floor), and with an entry appended to a
 * change log in a second named database (the floor of pystore's format);
 * and ps_fw_save_many of all 10,000 records in one call beside one raw
 * LMDB txn of 10,000 puts (µs per record).  Both environments are opened
 * with MDB_NOSYNC and in the same write mode: the store's own (MDB_WRITEMAP
 * with a preallocated map on ext4 / xfs / tmpfs), or with -p the pwrite
 * mode (PYSTORE_WRITEMAP=0 for the store).  Rounds interleave the loops in
 * a shuffled order, timed in this thread's CPU time (the box is shared);
 * medians of µs/op are printed, and the median over the rounds of each
 * round's ratio to the floors, and the ratio of the two floors (what the
 * change-log entry costs by itself).  Not a test (no add_test): `make bench-core`
 * builds it -O2 and runs it.
 *
 * usage: bench_write [-p] [-b] [-o LOOP] DIR [ROUNDS [OPS]]   (DIR is
 * emptied first; -b adds the batches; -o runs only loop LOOP, 0-7 in the
 * order printed: for perf).  BENCH_THRASH_KB=N in the environment: N KiB
 * written between ops, untimed, each op timed alone (see loop()). */
#define _GNU_SOURCE
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pystore_core.h"

#define NREC 10000
#define PAYLOAD 1100
#define MAXROUNDS 101

static int writemap = 1;

#define CK(x)                                                                 \
    do {                                                                      \
        int rc_ = (x);                                                        \
        if (rc_) {                                                            \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x,         \
                    ps_strerror(rc_));                                        \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* a loaded box: CPU time */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char payload[PAYLOAD];
static size_t payload_len;
/* drop field 99 (absent): the strip copies the whole message */
static const uint32_t strip_table[] = {1, 99, PS_STRIP_DROP};
static const ps_fw_plan plan = {strip_table, 3};

static size_t id_of(int i, char *out)
{
    return (size_t)snprintf(out, 32, "agt-%06d", i);
}

/* ---- pystore ---------------------------------------------------------- */

static ps_env *ps;

static void ps_save(int i)
{
    char id[32];
    size_t n = id_of(i, id);
    if (ps_fw_save(ps, "Agent", 5, id, n, payload, payload_len, &plan, 0, 0) < 0) {
        ps_fw_info info;
        ps_fw_last(&info);
        fprintf(stderr, "ps_fw_save: %s\n", ps_strerror(info.rc));
        exit(1);
    }
}

static void ps_delete(int i)
{
    char id[32];
    size_t n = id_of(i, id);
    if (ps_fw_del(ps, "Agent", 5, id, n, 0, 0) <= 0) {
        fprintf(stderr, "ps_fw_del failed\n");
        exit(1);
    }
}

/* ---- plain LMDB: one named database ----------------------------------- */

static MDB_env *fenv;
static MDB_dbi fdbi, fchg;
static uint64_t frev = 1;

/* the format's floor: the record, and an entry appended to a change log in
 * a second named database (key u64 BE revision + u32 0, ~30-byte value) */
static void log_append(MDB_txn *t, int i)
{
    char k[12], v[32];
    for (int b = 0; b < 8; b++)
        k[b] = (char)(frev >> (56 - 8 * b));
    memset(k + 8, 0, 4);
    memset(v, 0, 16);
    memcpy(v + 16, "Agent", 5);
    int n = snprintf(v + 21, 11, "agt-%06d", i);
    MDB_val kv = {12, k}, vv = {21 + (size_t)n, v};
    CK(mdb_put(t, fchg, &kv, &vv, MDB_APPEND));
    frev++;
}

static size_t fkey(int i, char *out)
{
    return (size_t)snprintf(out, 64, "Agent/agt-%06d", i);
}

/* Plain LMDB: one record put (12-byte header + payload) or deleted in a
 * txn of its own; with `log`, plus the change-log entry pystore appends. */
static void floor_put(int i, int log)
{
    char k[64];
    MDB_txn *t;
    MDB_val kv = {fkey(i, k), k}, vv = {12 + payload_len, NULL};
    CK(mdb_txn_begin(fenv, NULL, 0, &t));
    CK(mdb_put(t, fdbi, &kv, &vv, MDB_RESERVE));
    memset(vv.mv_data, 0, 12);
    memcpy((char *)vv.mv_data + 12, payload, payload_len);
    if (log)
        log_append(t, i);
    CK(mdb_txn_commit(t));
}

static void floor_del(int i, int log)
{
    char k[64];
    MDB_txn *t;
    MDB_val kv = {fkey(i, k), k};
    CK(mdb_txn_begin(fenv, NULL, 0, &t));
    CK(mdb_del(t, fdbi, &kv, NULL));
    if (log)
        log_append(t, i);
    CK(mdb_txn_commit(t));
}

static void floor_save(int i) { floor_put(i, 0); }
static void floor2_save(int i) { floor_put(i, 1); }
static void floor_delete(int i) { floor_del(i, 0); }
static void floor2_delete(int i) { floor_del(i, 1); }

/* ---- batches: n records in one transaction ------------------------------ */

static char *batch_data;
static uint32_t *batch_lens;

/* µs per record of one ps_fw_save_many of keys[0..n) (layout untimed) */
static double ps_batch(const int *k, int n)
{
    size_t off = 0;
    for (int x = 0; x < n; x++) {
        size_t il = id_of(k[x], batch_data + off);
        memcpy(batch_data + off + il, payload, payload_len);
        batch_lens[2 * x] = (uint32_t)il;
        batch_lens[2 * x + 1] = (uint32_t)payload_len;
        off += il + payload_len;
    }
    double t0 = now();
    if (ps_fw_save_many(ps, "Agent", 5, batch_data, off, batch_lens, (size_t)n, &plan) != n) {
        fprintf(stderr, "ps_fw_save_many failed\n");
        exit(1);
    }
    return (now() - t0) * 1e6 / n;
}

static double floor_batch(const int *k, int n)
{
    double t0 = now();
    MDB_txn *t;
    CK(mdb_txn_begin(fenv, NULL, 0, &t));
    for (int x = 0; x < n; x++) {
        char kb[64];
        MDB_val kv = {fkey(k[x], kb), kb}, vv = {12 + payload_len, NULL};
        CK(mdb_put(t, fdbi, &kv, &vv, MDB_RESERVE));
        memset(vv.mv_data, 0, 12);
        memcpy((char *)vv.mv_data + 12, payload, payload_len);
    }
    CK(mdb_txn_commit(t));
    return (now() - t0) * 1e6 / n;
}

/* ---- rounds ----------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int *keys;

/* BENCH_THRASH_KB=N: N KiB written between ops, untimed (the caches as a
 * Python caller leaves them: its interpreter's work between two calls
 * evicts what the last write touched); each op is then timed alone on the
 * monotonic clock. */
static unsigned char *thrash;
static size_t thrash_len;

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void evict(void)
{
    for (size_t i = 0; i < thrash_len; i += 64)
        thrash[i]++;
}

/* µs per op of fn over keys[0..ops), then restore (untimed) if given */
static double loop(void (*fn)(int), void (*restore)(int), int ops)
{
    double us;
    if (thrash) {
        double sum = 0;
        for (int n = 0; n < ops; n++) {
            evict();
            double t0 = mono();
            fn(keys[n]);
            sum += mono() - t0;
        }
        us = sum * 1e6 / ops;
    } else {
        double t0 = now();
        for (int n = 0; n < ops; n++)
            fn(keys[n]);
        us = (now() - t0) * 1e6 / ops;
    }
    if (restore)
        for (int n = 0; n < ops; n++)
            restore(keys[n]);
    return us;
}

static void shuffle(int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = a[i];
        a[i] = a[j];
        a[j] = x;
    }
}

int main(int argc, char **argv)
{
    int argi = 1;
    if (argi < argc && strcmp(argv[argi], "-p") == 0) {
        writemap = 0;
        setenv("PYSTORE_WRITEMAP", "0", 1); /* a new store in pwrite mode */
        argi++;
    }
    int nloops = 6;
    if (argi < argc && strcmp(argv[argi], "-b") == 0) {
        nloops = 8; /* the batches too (they evict the caches of the rest) */
        argi++;
    }
    int only = -1;
    if (argi + 1 < argc && strcmp(argv[argi], "-o") == 0) {
        only = atoi(argv[argi + 1]);
        argi += 2;
    }
    if (argi >= argc) {
        fprintf(stderr, "usage: bench_write [-p] [-b] [-o LOOP] DIR [ROUNDS [OPS]]\n");
        return 2;
    }
    const char *dir = argv[argi];
    const char *tk = getenv("BENCH_THRASH_KB");
    if (tk && atoi(tk) > 0) {
        thrash_len = (size_t)atoi(tk) << 10;
        thrash = calloc(1, thrash_len);
    }
    int rounds = argi + 1 < argc ? atoi(argv[argi + 1]) : 9;
    int ops = argi + 2 < argc ? atoi(argv[argi + 2]) : 2000;
    if (rounds < 1 || rounds > MAXROUNDS || ops < 1 || ops > NREC)
        return 2;
    char cmd[4200], pdir[4200], fdir[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    snprintf(pdir, sizeof pdir, "%s/pystore", dir);
    snprintf(fdir, sizeof fdir, "%s/floor", dir);
    mkdir(dir, 0700);
    mkdir(fdir, 0700);
    mkdir(pdir, 0700);

    /* field 1, length-delimited: a valid message of PAYLOAD bytes */
    payload[0] = 0x0a;
    payload[1] = (char)(0x80 | ((PAYLOAD - 4) & 0x7f));
    payload[2] = (char)((PAYLOAD - 4) >> 7);
    memset(payload + 3, 'x', PAYLOAD - 4);
    payload_len = PAYLOAD - 1;

    CK(ps_env_open(pdir, 0, PS_OPEN_NOSYNC, &ps));
    int ps_writemap = ps_env_writemap(ps);
    ps_txn *t;
    CK(ps_txn_begin(ps, PS_TXN_WRITE, &t));
    for (int i = 0; i < NREC; i++) {
        char id[32];
        CK(ps_put(t, "Agent", 5, id, id_of(i, id), payload, payload_len, 0, 0));
    }
    CK(ps_txn_commit(t));

    CK(mdb_env_create(&fenv));
    CK(mdb_env_set_mapsize(fenv, (size_t)1 << 30));
    CK(mdb_env_set_maxdbs(fenv, 2));
    CK(mdb_env_open(fenv, fdir, MDB_NOSYNC | MDB_NOTLS | (writemap ? MDB_WRITEMAP : 0), 0600));
    MDB_txn *ft;
    CK(mdb_txn_begin(fenv, NULL, 0, &ft));
    CK(mdb_dbi_open(ft, "resources", MDB_CREATE, &fdbi));
    CK(mdb_dbi_open(ft, "changes", MDB_CREATE, &fchg));
    CK(mdb_txn_commit(ft));
    for (int i = 0; i < NREC; i++)
        floor_save(i);

    keys = malloc(NREC * sizeof *keys);
    for (int i = 0; i < NREC; i++)
        keys[i] = i;
    srand(7);
    batch_data = malloc((size_t)NREC * (32 + PAYLOAD));
    batch_lens = malloc(2 * NREC * sizeof *batch_lens);
    static double res[8][MAXROUNDS];
    const char *names[8] = {"floor save", "ps_fw_save", "floor delete", "ps_fw_del",
                            "floor+log save", "floor+log del", "floor batch", "ps batch"};
    for (int r = -1; r < rounds; r++) { /* round -1 warms up */
        int order[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        shuffle(order, nloops);
        for (int x = 0; x < nloops; x++) {
            if (only >= 0)
                order[x] = only;
            shuffle(keys, NREC);
            double us = 0;
            switch (order[x]) {
            case 0: us = loop(floor_save, NULL, ops); break;
            case 1: us = loop(ps_save, NULL, ops); break;
            case 2: us = loop(floor_delete, floor_save, ops); break;
            case 3: us = loop(ps_delete, ps_save, ops); break;
            case 4: us = loop(floor2_save, NULL, ops); break;
            case 5: us = loop(floor2_delete, floor_save, ops); break;
            case 6: us = floor_batch(keys, NREC); break;
            case 7: us = ps_batch(keys, NREC); break;
            }
            if (r >= 0)
                res[order[x]][r] = us;
        }
    }
    static double ratio[7][MAXROUNDS];
    for (int r = 0; r < rounds; r++) {
        ratio[0][r] = res[1][r] / res[0][r];
        ratio[1][r] = res[1][r] / res[4][r];
        ratio[2][r] = res[3][r] / res[2][r];
        ratio[3][r] = res[3][r] / res[5][r];
        ratio[4][r] = res[7][r] / res[6][r];
        ratio[5][r] = res[4][r] / res[0][r]; /* the format's own cost: the log */
        ratio[6][r] = res[5][r] / res[2][r];
    }
    double m[8], q[7];
    for (int x = 0; x < 8; x++)
        m[x] = median(res[x], rounds);
    for (int x = 0; x < 7; x++)
        q[x] = median(ratio[x], rounds);
    printf("floor %s, store %s; %d rounds x %d ops, %d records of %zu bytes\n",
           writemap ? "MDB_WRITEMAP" : "pwrite", ps_writemap == 1 ? "MDB_WRITEMAP" : "pwrite",
           rounds, ops, NREC, payload_len);
    for (int x = 0; x < nloops; x++)
        printf("  %-15s %7.3f us/%s\n", names[x], m[x], x < 6 ? "op" : "record");
    printf("  save   ps/floor %.2fx  ps/(floor+log) %.2fx  (medians of per-round ratios)\n",
           q[0], q[1]);
    printf("  delete ps/floor %.2fx  ps/(floor+log) %.2fx\n", q[2], q[3]);
    printf("  the change log alone (floor+log)/floor: save %.2fx  delete %.2fx\n", q[5], q[6]);
    if (nloops == 8)
        printf("  batch of %d ps/floor %.2fx\n", NREC, q[4]);
    ps_env_close(ps);
    mdb_env_close(fenv);
    free(keys);
    free(batch_data);
    free(batch_lens);
    return 0;
}
