/* test_etcd.c -- ps_etcd_range_wire: an etcd RangeResponse, built here byte
 * by byte as etcd sends it, to a repeated-field list; malformed input.
 * usage: test_etcd */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures;

#include "check.h"

typedef struct msg {
    unsigned char b[4096];
    size_t n;
} msg;

static void varint(msg *m, uint64_t v)
{
    while (v > 0x7f) {
        m->b[m->n++] = (unsigned char)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    m->b[m->n++] = (unsigned char)v;
}

static void bytes_field(msg *m, unsigned field, const void *p, size_t len)
{
    varint(m, ((uint64_t)field << 3) | 2);
    varint(m, len);
    memcpy(m->b + m->n, p, len);
    m->n += len;
}

static void int_field(msg *m, unsigned field, uint64_t v)
{
    varint(m, (uint64_t)field << 3);
    varint(m, v);
}

/* A KeyValue with a pystore record value (header + payload). */
static void kv(msg *resp, const char *key, const char *payload, int version)
{
    msg rec = {.n = 0}, one = {.n = 0};
    memset(rec.b, 0, PS_HEADER_SIZE);
    rec.b[0] = (unsigned char)version;
    rec.n = PS_HEADER_SIZE;
    memcpy(rec.b + rec.n, payload, strlen(payload));
    rec.n += strlen(payload);
    bytes_field(&one, 1, key, strlen(key));
    int_field(&one, 2, 7);  /* create_revision */
    int_field(&one, 3, 9);  /* mod_revision */
    bytes_field(&one, 5, rec.b, rec.n);
    int_field(&one, 6, 0);  /* lease */
    bytes_field(resp, 2, one.b, one.n);
}

static void test_list(void)
{
    msg h = {.n = 0}, r = {.n = 0};
    int_field(&h, 1, 123); /* cluster_id */
    int_field(&h, 3, 42);  /* revision */
    bytes_field(&r, 1, h.b, h.n);
    kv(&r, "/R/r/A/1", "hello", PS_FORMAT_VERSION);
    kv(&r, "/R/r/A/2", "", PS_FORMAT_VERSION);
    int_field(&r, 3, 1);   /* more */
    int_field(&r, 4, 17);  /* count */
    ps_buf out = {0};
    uint64_t rev = 0;
    int more = 0;
    size_t off = 0, len = 0;
    CHECK_RC(ps_etcd_range_wire((const char *)r.b, r.n, 1, &out, &rev, &more, &off, &len),
             PS_OK);
    CHECK(out.count == 2 && rev == 42 && more == 1);
    CHECK(len == 8 && memcmp(r.b + off, "/R/r/A/2", 8) == 0);
    const char want[] = "\x0a\x05hello\x0a\x00";
    CHECK(out.len == sizeof want - 1 && memcmp(out.data, want, out.len) == 0);
    ps_buf_free(&out);

    /* an empty response: nothing, no key */
    ps_buf none = {0};
    CHECK_RC(ps_etcd_range_wire("", 0, 1, &none, &rev, &more, &off, &len), PS_OK);
    CHECK(none.count == 0 && rev == 0 && more == 0 && len == 0);
    ps_buf_free(&none);
}

static void test_bad_input(void)
{
    ps_buf out = {0};
    uint64_t rev;
    int more;
    size_t off, len;
    msg r = {.n = 0};
    kv(&r, "/R/r/A/1", "x", 1); /* not a format-2 record */
    CHECK_RC(ps_etcd_range_wire((const char *)r.b, r.n, 1, &out, &rev, &more, &off, &len),
             PS_ERR_BAD_RECORD);
    ps_buf_free(&out);
    msg t = {.n = 0};
    kv(&t, "/R/r/A/1", "hello", PS_FORMAT_VERSION);
    for (size_t cut = 1; cut < t.n; cut++) { /* every truncation is refused */
        ps_buf o = {0};
        int rc = ps_etcd_range_wire((const char *)t.b, cut, 1, &o, &rev, &more, &off, &len);
        CHECK(rc == PS_ERR_INVALID_ARG || rc == PS_ERR_BAD_RECORD);
        ps_buf_free(&o);
    }
    ps_buf o = {0};
    CHECK_RC(ps_etcd_range_wire((const char *)t.b, t.n, 0, &o, &rev, &more, &off, &len),
             PS_ERR_INVALID_ARG);
    CHECK_RC(ps_etcd_range_wire(NULL, 3, 1, &o, &rev, &more, &off, &len), PS_ERR_INVALID_ARG);
    CHECK_RC(ps_etcd_range_wire((const char *)t.b, t.n, 1, NULL, &rev, &more, &off, &len),
             PS_ERR_INVALID_ARG);
    ps_buf_free(&o);
}

int main(void)
{
    test_list();
    test_bad_input();
    if (failures) {
        fprintf(stderr, "test_etcd: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_etcd: ok\n");
    return 0;
}
