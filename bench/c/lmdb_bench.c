/*
 * lmdb_bench.c -- the workload of bench/ on liblmdb with no Python: the
 * physical limit on this machine.  Reads the workload file written by
 * bench/workload.py, does the same operations in the same rounds as the
 * Python benchmarks, times itself and prints JSON on stdout:
 *   {"ops": {"<op>": {"ops": N, "median_s": M, "rounds_s": [...]}}, "size": B}
 * where median_s is the median time of one round of N operations.
 *
 * Usage: lmdb_bench WORKLOAD_FILE SCRATCH_DIR [space]
 * With "space" it only loads the records (5,000 per commit) and prints
 *   {"size": ALLOCATED, "apparent": APPARENT, "records": N}
 * (allocated = st_blocks * 512, apparent = st_size, summed over the files).
 *
 * Keys are "<kind>/<id>" in LMDB's main database; values are the raw
 * protobuf payloads (no header).  Saves use one write txn each; reads reuse
 * one read txn handle (mdb_txn_reset/mdb_txn_renew) and copy the value out,
 * as a C caller keeping the data after the txn must.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CHECK(expr)                                                          \
    do {                                                                     \
        int rc_ = (expr);                                                    \
        if (rc_) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,   \
                    mdb_strerror(rc_));                                      \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

typedef struct {
    const char *kind, *id, *val;
    size_t kind_len, id_len, val_len;
} rec;

static rec *recs;
static uint32_t n_recs, n_gets, n_saves, n_batch;
static uint32_t *gets, *saves;
static rec *batch;
static char *outbuf;
static size_t outcap;

static const unsigned char *rd_p, *rd_end;

static const unsigned char *take(size_t n)
{
    if ((size_t)(rd_end - rd_p) < n) {
        fprintf(stderr, "workload file truncated\n");
        exit(1);
    }
    const unsigned char *p = rd_p;
    rd_p += n;
    return p;
}
static uint32_t u32(void) { const unsigned char *p = take(4); return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t u16(void) { const unsigned char *p = take(2); return (uint16_t)(p[0] | p[1] << 8); }

static void load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)size);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) { perror("read"); exit(1); }
    fclose(f);
    rd_p = data;
    rd_end = data + size;
    if (memcmp(take(8), "PSBW1\0\0\0", 8) != 0) { fprintf(stderr, "bad workload file\n"); exit(1); }
    n_recs = u32();
    recs = calloc(n_recs, sizeof *recs);
    for (uint32_t i = 0; i < n_recs; i++) {
        recs[i].kind_len = u16();
        recs[i].id_len = u16();
        recs[i].val_len = u32();
        recs[i].kind = (const char *)take(recs[i].kind_len);
        recs[i].id = (const char *)take(recs[i].id_len);
        recs[i].val = (const char *)take(recs[i].val_len);
    }
    n_gets = u32();
    gets = calloc(n_gets, 4);
    for (uint32_t i = 0; i < n_gets; i++) gets[i] = u32();
    n_saves = u32();
    saves = calloc(n_saves, 4);
    for (uint32_t i = 0; i < n_saves; i++) saves[i] = u32();
    n_batch = u32();
    batch = calloc(n_batch, sizeof *batch);
    for (uint32_t i = 0; i < n_batch; i++) {
        batch[i].id_len = u16();
        batch[i].id = (const char *)take(batch[i].id_len);
        uint32_t r = u32();
        if (r >= n_recs) { fprintf(stderr, "bad batch index\n"); exit(1); }
        batch[i].kind = "Batch";
        batch[i].kind_len = 5;
        batch[i].val = recs[r].val;
        batch[i].val_len = recs[r].val_len;
    }
    for (uint32_t i = 0; i < n_gets; i++) if (gets[i] >= n_recs) exit(1);
    for (uint32_t i = 0; i < n_saves; i++) if (saves[i] >= n_recs) exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t make_key(char *out, const char *kind, size_t kl, const char *id, size_t il)
{
    memcpy(out, kind, kl);
    out[kl] = '/';
    memcpy(out + kl + 1, id, il);
    return kl + 1 + il;
}

static MDB_env *open_env(const char *dir, int durable)
{
    MDB_env *env;
    mkdir(dir, 0700);
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)4 << 30));
    CHECK(mdb_env_open(env, dir, MDB_NOTLS | (durable ? 0 : MDB_NOSYNC), 0600));
    return env;
}

static MDB_dbi main_dbi(MDB_env *env)
{
    MDB_txn *t;
    MDB_dbi dbi;
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    CHECK(mdb_dbi_open(t, NULL, 0, &dbi));
    CHECK(mdb_txn_commit(t));
    return dbi;
}

static void put_recs(MDB_env *env, MDB_dbi dbi, const rec *r, size_t n, const char *kind_override)
{
    MDB_txn *t;
    char key[512];
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    for (size_t i = 0; i < n; i++) {
        const char *kind = kind_override ? kind_override : r[i].kind;
        size_t kl = kind_override ? strlen(kind_override) : r[i].kind_len;
        MDB_val k = {make_key(key, kind, kl, r[i].id, r[i].id_len), key};
        MDB_val v = {r[i].val_len, (void *)r[i].val};
        CHECK(mdb_put(t, dbi, &k, &v, 0));
    }
    CHECK(mdb_txn_commit(t));
}

static uint64_t del_prefix(MDB_env *env, MDB_dbi dbi, const char *prefix)
{
    MDB_txn *t;
    MDB_cursor *c;
    size_t pl = strlen(prefix);
    uint64_t n = 0;
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    CHECK(mdb_cursor_open(t, dbi, &c));
    MDB_val k = {pl, (void *)prefix}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0) {
        CHECK(mdb_cursor_del(c, 0));
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
        if (rc) {
            k.mv_size = pl;
            k.mv_data = (void *)prefix;
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        }
    }
    if (rc && rc != MDB_NOTFOUND) CHECK(rc);
    mdb_cursor_close(c);
    CHECK(mdb_txn_commit(t));
    return n;
}

static void save_one(MDB_env *env, MDB_dbi dbi, const rec *r)
{
    MDB_txn *t;
    char key[512];
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    MDB_val k = {make_key(key, r->kind, r->kind_len, r->id, r->id_len), key};
    MDB_val v = {r->val_len, NULL};
    CHECK(mdb_put(t, dbi, &k, &v, MDB_RESERVE));
    memcpy(v.mv_data, r->val, r->val_len);
    CHECK(mdb_txn_commit(t));
}

static void ensure_out(size_t need)
{
    if (need <= outcap) return;
    while (outcap < need) outcap = outcap ? outcap * 2 : 1 << 20;
    outbuf = realloc(outbuf, outcap);
    if (!outbuf) exit(1);
}

/* Copy the records of `prefix` after `after` (NULL: from the first), at
 * most `limit` (0: all), into outbuf; returns the count; *last gets the
 * last key (copied). */
static size_t list_into(MDB_txn *t, MDB_dbi dbi, const char *prefix, const char *after,
                        size_t after_len, size_t limit, char *last, size_t *last_len)
{
    MDB_cursor *c;
    size_t pl = strlen(prefix), n = 0, off = 0;
    CHECK(mdb_cursor_open(t, dbi, &c));
    MDB_val k = after ? (MDB_val){after_len, (void *)after} : (MDB_val){pl, (void *)prefix}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && after && k.mv_size == after_len && memcmp(k.mv_data, after, after_len) == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    while (rc == 0 && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0 && (!limit || n < limit)) {
        ensure_out(off + v.mv_size + 8);
        memcpy(outbuf + off, &v.mv_size, 8);
        memcpy(outbuf + off + 8, v.mv_data, v.mv_size);
        off += 8 + v.mv_size;
        n++;
        if (last) {
            memcpy(last, k.mv_data, k.mv_size);
            *last_len = k.mv_size;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND) CHECK(rc);
    mdb_cursor_close(c);
    return n;
}

static void reinsert_saves(MDB_env *env, MDB_dbi dbi)
{
    MDB_txn *t;
    char key[512];
    CHECK(mdb_txn_begin(env, NULL, 0, &t));
    for (uint32_t i = 0; i < n_saves; i++) {
        const rec *r = &recs[saves[i]];
        MDB_val k = {make_key(key, r->kind, r->kind_len, r->id, r->id_len), key};
        MDB_val v = {r->val_len, (void *)r->val};
        CHECK(mdb_put(t, dbi, &k, &v, 0));
    }
    CHECK(mdb_txn_commit(t));
}

/* Bytes of the files of a directory: allocated on disk (st_blocks * 512)
 * or, with apparent, their sizes (st_size). */
static uint64_t dir_bytes_of(const char *dir, int apparent)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t total = 0;
    char path[4096];
    while (d && (e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0)
            total += apparent ? (uint64_t)st.st_size : (uint64_t)st.st_blocks * 512;
    }
    if (d) closedir(d);
    return total;
}
static uint64_t dir_bytes(const char *dir) { return dir_bytes_of(dir, 0); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int first_op = 1;
static void report(const char *op, size_t ops, double *t, int n)
{
    double s[64];
    memcpy(s, t, n * sizeof *t);
    qsort(s, n, sizeof *s, cmp_double);
    double med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    printf("%s\n  \"%s\": {\"ops\": %zu, \"median_s\": %.9f, \"rounds_s\": [", first_op ? "" : ",", op, ops, med);
    for (int i = 0; i < n; i++) printf("%s%.9f", i ? ", " : "", t[i]);
    printf("]}");
    first_op = 0;
}

/* Run body `rounds` times after one warm-up round; setup (untimed) before each. */
#define ROUNDS(op, ops, rounds, setup, ...)                                  \
    do {                                                                      \
        double times_[64];                                                    \
        for (int r_ = -1; r_ < (rounds); r_++) {                             \
            setup;                                                            \
            double t0_ = now();                                               \
            __VA_ARGS__;                                                      \
            double t1_ = now();                                               \
            if (r_ >= 0) times_[r_] = t1_ - t0_;                              \
        }                                                                     \
        report(op, ops, times_, rounds);                                      \
    } while (0)

int main(int argc, char **argv)
{
    int space_only = argc == 4 && strcmp(argv[3], "space") == 0;
    if (argc != 3 && !space_only) {
        fprintf(stderr, "usage: %s WORKLOAD_FILE SCRATCH_DIR [space]\n", argv[0]);
        return 2;
    }
    load_file(argv[1]);
    char dir[4096], ddir[4096], odir[4096];
    mkdir(argv[2], 0700);
    snprintf(dir, sizeof dir, "%s/main", argv[2]);
    snprintf(ddir, sizeof ddir, "%s/durable", argv[2]);
    snprintf(odir, sizeof odir, "%s/openclose", argv[2]);

    MDB_env *env = open_env(dir, 0);
    MDB_dbi dbi = main_dbi(env);
    for (uint32_t i = 0; i < n_recs; i += 5000)
        put_recs(env, dbi, recs + i, n_recs - i < 5000 ? n_recs - i : 5000, NULL);
    uint64_t size = dir_bytes(dir), apparent = dir_bytes_of(dir, 1);
    if (space_only) {
        printf("{\"size\": %llu, \"apparent\": %llu, \"records\": %u}\n",
               (unsigned long long)size, (unsigned long long)apparent, n_recs);
        mdb_env_close(env);
        return 0;
    }
    /* the listed kind ("Agent") and the doomed kind have this many records */
    size_t n_agents = 0;
    for (uint32_t i = 0; i < n_recs; i++)
        if (recs[i].kind_len == 5 && memcmp(recs[i].kind, "Agent", 5) == 0) n_agents++;
    printf("{\"size\": %llu, \"apparent\": %llu, \"records\": %u, \"ops\": {",
           (unsigned long long)size, (unsigned long long)apparent, n_recs);

    ROUNDS("save_one", n_saves, 10, (void)0,
           for (uint32_t i = 0; i < n_saves; i++) save_one(env, dbi, &recs[saves[i]]));

    {
        MDB_env *denv = open_env(ddir, 1);
        MDB_dbi ddbi = main_dbi(denv);
        uint32_t n = n_saves < 20 ? n_saves : 20;
        ROUNDS("save_durable", n, 5, (void)0,
               for (uint32_t i = 0; i < n; i++) save_one(denv, ddbi, &recs[saves[i]]));
        mdb_env_close(denv);
    }

    ROUNDS("save_batch", n_batch, 5, del_prefix(env, dbi, "Batch/"),
           put_recs(env, dbi, batch, n_batch, NULL));

    MDB_txn *rt;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &rt));
    mdb_txn_reset(rt);
    char key[512];
    size_t copied = 0;
    ROUNDS("get_raw", n_gets, 15, (void)0, {
        for (uint32_t i = 0; i < n_gets; i++) {
            const rec *r = &recs[gets[i]];
            CHECK(mdb_txn_renew(rt));
            MDB_val k = {make_key(key, r->kind, r->kind_len, r->id, r->id_len), key}, v;
            CHECK(mdb_get(rt, dbi, &k, &v));
            ensure_out(v.mv_size);
            memcpy(outbuf, v.mv_data, v.mv_size);
            copied += v.mv_size;
            mdb_txn_reset(rt);
        }
    });

    size_t listed = 0;
    ROUNDS("list_raw", n_agents, 10, (void)0, {
        CHECK(mdb_txn_renew(rt));
        listed = list_into(rt, dbi, "Agent/", NULL, 0, 0, NULL, NULL);
        mdb_txn_reset(rt);
    });
    if (listed != n_agents) { fprintf(stderr, "listed %zu\n", listed); return 1; }

    ROUNDS("iter_pages", n_agents, 10, (void)0, {
        char last[512];
        size_t last_len = 0, got, total = 0;
        do {
            CHECK(mdb_txn_renew(rt));
            got = list_into(rt, dbi, "Agent/", total ? last : NULL, last_len, 512, last, &last_len);
            mdb_txn_reset(rt);
            total += got;
        } while (got == 512);
        if (total != n_agents) { fprintf(stderr, "iterated %zu\n", total); exit(1); }
    });
    mdb_txn_abort(rt);

    ROUNDS("delete_one", n_saves, 5, reinsert_saves(env, dbi)    , {
        for (uint32_t i = 0; i < n_saves; i++) {
            const rec *r = &recs[saves[i]];
            MDB_txn *t;
            CHECK(mdb_txn_begin(env, NULL, 0, &t));
            MDB_val k = {make_key(key, r->kind, r->kind_len, r->id, r->id_len), key};
            CHECK(mdb_del(t, dbi, &k, NULL));
            CHECK(mdb_txn_commit(t));
        }
    });

    {
        rec *doomed = calloc(n_agents ? n_agents : 1, sizeof *doomed);
        size_t nd = 0;
        for (uint32_t i = 0; i < n_recs && nd < n_agents; i++)
            if (recs[i].kind_len == 5 && memcmp(recs[i].kind, "Agent", 5) == 0)
                doomed[nd++] = recs[i];
        uint64_t deleted = 0;
        ROUNDS("delete_kind", nd, 5, put_recs(env, dbi, doomed, nd, "Doomed"),
               deleted = del_prefix(env, dbi, "Doomed/"));
        if (deleted != nd) { fprintf(stderr, "deleted %llu\n", (unsigned long long)deleted); return 1; }
        free(doomed);
    }
    mdb_env_close(env);

    {
        MDB_env *oenv = open_env(odir, 0);
        MDB_dbi odbi = main_dbi(oenv);
        put_recs(oenv, odbi, recs, n_recs < 1000 ? n_recs : 1000, NULL);
        mdb_env_close(oenv);
        ROUNDS("open_close", 1, 50, (void)0, {
            MDB_env *e = open_env(odir, 0);
            (void)main_dbi(e);
            mdb_env_close(e);
        });
    }
    printf("\n}, \"copied\": %zu}\n", copied);
    return 0;
}
