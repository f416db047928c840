/* ps_check.c -- refuse a data.mdb cut short before LMDB maps a page of it.
 *
 * LMDB maps data.mdb and follows page numbers without checking them
 * against the file's size: a read past the end of a truncated file raises
 * SIGBUS and kills the process.  A file may legitimately end before the
 * last page number in use, though: pages a transaction allocated and freed
 * again are free and never written.  So when the file is shorter than the
 * pages in use, this walks the B-trees with pread() (never through the
 * map) and refuses the file only if a page that is in use lies past its
 * end.  The layout read here is LMDB's data format 1 (lmdb.h's MDB_page,
 * MDB_node, MDB_db and MDB_meta on a 64-bit build). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ps_internal.h"

#define HDR 16          /* page header: pgno, pad, flags, lower, upper */
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_LEAF2 0x20
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define DB_ROOT 40      /* offset of md_root in MDB_db */
#define META_DBS 40     /* offset of mm_dbs[FREE_DBI] in a meta page */
#define META_DB_SIZE 48
#define META_TXNID 144
#define NO_PAGE ((uint64_t)-1)
#define MAX_DEPTH 64

typedef struct walk {
    int fd;
    size_t psize;
    uint64_t pages;     /* whole pages in the file */
    uint64_t budget;    /* pages left to visit: ends cycles in damaged files */
    char *buf;          /* one page per depth level */
} walk;

static uint16_t u16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t u64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static int read_page(walk *w, uint64_t pgno, char *page)
{
    if (pgno >= w->pages)
        return PS_ERR_TRUNCATED;
    ssize_t n = pread(w->fd, page, w->psize, (off_t)(pgno * w->psize));
    if (n < 0)
        return errno;
    return (size_t)n == w->psize ? PS_OK : PS_ERR_TRUNCATED;
}

static int walk_tree(walk *w, uint64_t pgno, int depth);

/* A leaf node's value: overflow pages and sub-database roots must exist. */
static int check_leaf_node(walk *w, const char *node, const char *end, int depth)
{
    uint16_t flags = u16(node + 4), ksize = u16(node + 6);
    const char *data = node + 8 + ksize;
    if (flags & F_BIGDATA) {
        if (data + 8 > end)
            return PS_LMDB_CORRUPTED;
        uint64_t ov = u64(data);
        char *page = w->buf + (size_t)(depth + 1) * w->psize;
        int rc = read_page(w, ov, page);
        if (rc)
            return rc;
        uint32_t count;
        memcpy(&count, page + 12, sizeof count);
        if (!(u16(page + 10) & P_OVERFLOW) || count == 0)
            return PS_LMDB_CORRUPTED;
        return ov + count <= w->pages ? PS_OK : PS_ERR_TRUNCATED;
    }
    if (flags & F_SUBDATA) {
        if (data + META_DB_SIZE > end)
            return PS_LMDB_CORRUPTED;
        return walk_tree(w, u64(data + DB_ROOT), depth + 1);
    }
    return PS_OK;
}

static int walk_tree(walk *w, uint64_t pgno, int depth)
{
    if (pgno == NO_PAGE)
        return PS_OK; /* empty tree */
    if (depth >= MAX_DEPTH || w->budget-- == 0)
        return PS_LMDB_CORRUPTED;
    char *page = w->buf + (size_t)depth * w->psize;
    int rc = read_page(w, pgno, page);
    if (rc)
        return rc;
    uint16_t flags = u16(page + 10), lower = u16(page + 12);
    if (lower < HDR || lower > w->psize)
        return PS_LMDB_CORRUPTED;
    if (flags & P_LEAF2)
        return PS_OK; /* fixed-size keys, no page numbers (DUPFIXED) */
    if (!(flags & (P_BRANCH | P_LEAF)))
        return PS_LMDB_CORRUPTED;
    const char *end = page + w->psize;
    for (unsigned i = 0; i < (unsigned)(lower - HDR) / 2; i++) {
        uint16_t off = u16(page + HDR + 2 * i);
        if (off < HDR || (size_t)off + 8 > w->psize)
            return PS_LMDB_CORRUPTED;
        const char *node = page + off;
        if (flags & P_BRANCH) {
            uint64_t child = (uint64_t)u16(node) | (uint64_t)u16(node + 2) << 16 |
                             (uint64_t)u16(node + 4) << 32;
            rc = walk_tree(w, child, depth + 1);
        } else {
            rc = check_leaf_node(w, node, end, depth);
        }
        if (rc)
            return rc;
    }
    return PS_OK;
}

int ps_check_file(MDB_env *mdb)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat sb;
    int rc = mdb_env_info(mdb, &info);
    if (!rc)
        rc = mdb_env_stat(mdb, &st);
    if (!rc)
        rc = mdb_env_get_fd(mdb, &fd);
    if (rc)
        return rc;
    if (fstat(fd, &sb) != 0)
        return errno;
    if (!S_ISREG(sb.st_mode) || st.ms_psize < 512)
        return PS_LMDB_INVALID;
    walk w = {fd, st.ms_psize, (uint64_t)sb.st_size / st.ms_psize, 0, NULL};
    if (info.me_last_pgno < w.pages)
        return PS_OK; /* every page in use lies inside the file */
    w.budget = w.pages + 1;
    w.buf = malloc(w.psize * (MAX_DEPTH + 1));
    if (w.buf == NULL)
        return PS_ERR_NOMEM;
    /* The newer of the two meta pages, as LMDB picks it. */
    char *meta = w.buf;
    uint64_t best = 0, roots[2] = {NO_PAGE, NO_PAGE};
    for (uint64_t m = 0; m < 2 && !rc; m++) {
        rc = read_page(&w, m, meta);
        if (!rc && (m == 0 || u64(meta + META_TXNID) > best)) {
            best = u64(meta + META_TXNID);
            roots[0] = u64(meta + META_DBS + DB_ROOT);                /* free pages */
            roots[1] = u64(meta + META_DBS + META_DB_SIZE + DB_ROOT); /* main */
        }
    }
    for (int i = 0; i < 2 && !rc; i++)
        rc = walk_tree(&w, roots[i], 0);
    free(w.buf);
    return rc;
}
