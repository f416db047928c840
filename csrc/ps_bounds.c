/* ps_bounds.c -- a damaged value size must not make a reader fault.
 *
 * LMDB hands out a value as a pointer into the map and the size stored in
 * its leaf node, unchecked.  One flipped bit there and a copy of the value
 * runs past the end of data.mdb: SIGBUS, in every reader.  Before the core
 * copies a value out of the map it checks that the value lies inside its
 * page (a value stored in a leaf page) or inside its overflow pages (a
 * large value: the page header holds their count), and inside the file.
 *
 * LMDB does not say where it mapped data.mdb, so the map is found at open
 * and again after every map resize: from one of its pages (base_from_page:
 * a page's header holds its page number), or else in /proc/self/maps (the
 * mapping of data.mdb's inode at offset 0 whose length is the map size;
 * reading it costs ~0.3 ms in a Python process).  Without either the page
 * check still bounds values in pages of a write transaction, and values in
 * the map by their page kind only. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "ps_internal.h"

#define PAGE_HDR 16      /* MDB_page header: pgno, pad, flags, lower/upper */
#define P_OVERFLOW 0x04
#define P_META 0x08
#define META_MAGIC 0xBEEFC0DEu /* MDB_meta.mm_magic, after the page header */
/* MDB_meta.mm_last_pg and mm_txnid: after the header, magic, version,
 * address, mapsize and the two MDB_db (48 bytes each) */
#define META_LAST_PG (PAGE_HDR + 4 + 4 + 8 + 8 + 2 * 48)
#define META_TXNID (META_LAST_PG + 8)

static uint16_t get_u16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t get_u32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Find data.mdb's mapping of `len` bytes in /proc/self/maps. */
static const char *find_map(dev_t dev, ino_t ino, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return NULL;
    char line[512];
    const char *found = NULL;
    int matches = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t start, end;
        unsigned long long off, inode;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %x:%x %llu", &start,
                   &end, perms, &off, &maj, &min, &inode) != 7)
            continue;
        if (inode == (unsigned long long)ino && makedev(maj, min) == dev &&
            off == 0 && end - start == len) {
            found = (const char *)start;
            matches++;
        }
        /* a line longer than the buffer: skip its rest */
        while (!strchr(line, '\n') && fgets(line, sizeof line, f))
            ;
    }
    fclose(f);
    return matches == 1 ? found : NULL;
}

static uint64_t get_u64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The map's base, found from one of its pages: the first key of the main
 * database, read in a read txn, lies in a page of the map whose header
 * holds its page number, so the map starts pgno pages below that page.
 * The address is used only if it is mapped (mincore: no fault on a bad
 * page number) and holds two meta pages of this page size, one of them
 * this env's newest (its txnid and last page, from mdb_env_info: a damaged
 * page number pointing at another store's map or at meta-like bytes of a
 * record is not believed).  NULL: not
 * found so (an empty main database, another page size than the OS's).
 * LMDB's page size must be the OS's: a store made on a machine of larger
 * pages keeps them, and its map (aligned to the OS's pages only) gives
 * no page start by masking an address, nor fits mincore's vector below. */
/* 1 when the meta page at `m` is the newest one `info` describes (its
 * txnid and last page): a map of another store, or meta-like bytes in a
 * record, that a damaged page number points to is not taken for this one's
 * (two commits between ps_bounds_refresh's mdb_env_info and this read
 * move both metas on: then neither matches and /proc decides). */
static int is_this_meta(const char *m, const MDB_envinfo *info)
{
    return get_u64(m + META_LAST_PG) == (uint64_t)info->me_last_pgno &&
           get_u64(m + META_TXNID) == (uint64_t)info->me_last_txnid;
}

static const char *base_from_page(MDB_env *env, size_t psize, const MDB_envinfo *info)
{
    size_t map_len = info->me_mapsize;
    long os = sysconf(_SC_PAGESIZE);
    if (os <= 0 || psize != (size_t)os || map_len < 2 * psize)
        return NULL;
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return NULL;
    const char *base = NULL;
    MDB_cursor *cur;
    MDB_dbi main_db;
    if (mdb_dbi_open(txn, NULL, 0, &main_db) == 0 && /* (no table change) */
        mdb_cursor_open(txn, main_db, &cur) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size) {
            uintptr_t page = (uintptr_t)k.mv_data & ~(uintptr_t)(psize - 1);
            uint64_t pgno = get_u64((const char *)page);
            unsigned char vec[2]; /* one byte per OS page: two pages */
            if (pgno < map_len / psize) {
                const char *b = (const char *)(page - (uintptr_t)(pgno * psize));
                if (mincore((void *)(uintptr_t)b, 2 * psize, vec) == 0 &&
                    is_this_meta(b, info) + is_this_meta(b + psize, info) > 0 &&
                    (get_u16(b + 10) & P_META) && (get_u16(b + psize + 10) & P_META) &&
                    get_u32(b + PAGE_HDR) == META_MAGIC &&
                    get_u32(b + psize + PAGE_HDR) == META_MAGIC)
                    base = b;
            }
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return base;
}

const char *ps_bounds_proc_base(ps_shared *sh)
{
    MDB_envinfo info;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_info(sh->mdb, &info) || mdb_env_get_fd(sh->mdb, &fd) || fstat(fd, &sb))
        return NULL;
    return find_map(sb.st_dev, sb.st_ino, info.me_mapsize);
}

int ps_bounds_refresh(ps_shared *sh)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat sb;
    int rc = mdb_env_info(sh->mdb, &info);
    if (!rc)
        rc = mdb_env_stat(sh->mdb, &st);
    if (!rc)
        rc = mdb_env_get_fd(sh->mdb, &fd);
    if (rc)
        return rc;
    if (fstat(fd, &sb) != 0)
        return errno;
    sh->psize = st.ms_psize;
    sh->map_len = info.me_mapsize;
    sh->map_base = base_from_page(sh->mdb, st.ms_psize, &info);
    if (sh->map_base == NULL)
        sh->map_base = find_map(sb.st_dev, sb.st_ino, info.me_mapsize);
    __atomic_store_n(&sh->file_bytes, (uint64_t)sb.st_size, __ATOMIC_RELAXED);
    return PS_OK;
}

/* Does [off, off + n) of the map lie inside data.mdb?  The file only
 * grows while open: the cached size is refreshed when it is exceeded. */
static int inside_file(ps_shared *sh, uint64_t end)
{
    if (end <= __atomic_load_n(&sh->file_bytes, __ATOMIC_RELAXED))
        return 1;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_get_fd(sh->mdb, &fd) != 0 || fstat(fd, &sb) != 0)
        return 0;
    __atomic_store_n(&sh->file_bytes, (uint64_t)sb.st_size, __ATOMIC_RELAXED);
    return end <= (uint64_t)sb.st_size;
}

int ps_value_check(ps_shared *sh, const MDB_val *v)
{
    const char *p = v->mv_data;
    size_t n = v->mv_size, psize = sh->psize;
    if (n == 0 || psize == 0)
        return PS_OK;
    const char *base = sh->map_base;
    if (base && p >= base && (size_t)(p - base) < sh->map_len) {
        size_t off = (size_t)(p - base);
        size_t page = off - off % psize;
        uint64_t limit = page + psize;
        if (off - page == PAGE_HDR && (get_u16(base + page + 10) & P_OVERFLOW))
            limit = page + (uint64_t)get_u32(base + page + 12) * psize;
        if (limit <= off || n > limit - off || !inside_file(sh, (uint64_t)off + n))
            return PS_ERR_VALUE_BOUNDS;
        return PS_OK;
    }
    /* A page of a write transaction (or the map is unknown): a value
     * longer than a page must be an overflow value, whose page header
     * precedes it; an inline value starts at least 25 bytes into its page,
     * so reading 16 bytes before it stays inside that page. */
    if (n <= psize - PAGE_HDR)
        return PS_OK;
    const char *hdr = p - PAGE_HDR;
    if (!(get_u16(hdr + 10) & P_OVERFLOW))
        return PS_ERR_VALUE_BOUNDS;
    uint64_t cap = (uint64_t)get_u32(hdr + 12) * psize - PAGE_HDR;
    return n <= cap ? PS_OK : PS_ERR_VALUE_BOUNDS;
}
