#include "http/headers.h"

#include <string.h>

#include "core/strutil.h"

void pt_headers_init(struct pt_headers *h, struct pt_arena *arena, uint32_t max)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->max = max;
    h->arena = arena;
}

static int grow(struct pt_headers *h)
{
    uint32_t cap = h->cap ? h->cap * 2 : 16;
    struct pt_header *v = pt_arena_alloc(h->arena, cap * sizeof(*v));
    if (!v)
        return PT_ERR_LIMIT;
    if (h->n)
        memcpy(v, h->v, h->n * sizeof(*v));
    h->v = v;
    h->cap = cap;
    return 0;
}

int pt_headers_add_ref(struct pt_headers *h, struct pt_str name, struct pt_str value)
{
    if (h->max && h->n >= h->max)
        return PT_ERR_LIMIT;
    if (h->n == h->cap && grow(h) != 0)
        return PT_ERR_LIMIT;
    h->v[h->n++] = (struct pt_header){name, value};
    return 0;
}

int pt_headers_index(const struct pt_headers *h, struct pt_str name, uint32_t from)
{
    for (uint32_t i = from; i < h->n; i++)
        if (pt_str_eq(h->v[i].name, name))
            return (int)i;
    return -1;
}

void pt_headers_remove_at(struct pt_headers *h, uint32_t i)
{
    if (i >= h->n)
        return;
    memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(h->v[0]));
    h->n--;
}

size_t pt_headers_bytes(const struct pt_headers *h)
{
    size_t n = 0;
    for (uint32_t i = 0; i < h->n; i++)
        n += h->v[i].name.len + h->v[i].value.len;
    return n;
}

int pt_headers_copy_ref(struct pt_headers *dst, const struct pt_headers *src)
{
    for (uint32_t i = 0; i < src->n; i++)
        if (pt_headers_add_ref(dst, src->v[i].name, src->v[i].value) != 0)
            return PT_ERR_LIMIT;
    return 0;
}

static const char token_chars[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1,  ['n'] = 1, ['o'] = 1,
    ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,  ['v'] = 1, ['w'] = 1,
    ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,  ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1,
    ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,  ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

bool pt_http_is_token(struct pt_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!token_chars[(unsigned char)s.ptr[i]])
            return false;
    return true;
}

bool pt_http_is_field_value(struct pt_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static const struct pt_str hop_by_hop[] = {
    PT_STR("connection"),        PT_STR("keep-alive"), PT_STR("proxy-connection"),
    PT_STR("transfer-encoding"), PT_STR("upgrade"),    PT_STR("trailer"),
};

void pt_headers_strip_hop_by_hop(struct pt_headers *h, bool keep_te_trailers)
{
    /* Names listed in Connection are hop-by-hop too; collect before removing. */
    struct pt_str listed[16];
    size_t nlisted = 0;
    for (int i = pt_headers_index(h, PT_STR("connection"), 0); i >= 0;
         i = pt_headers_index(h, PT_STR("connection"), (uint32_t)i + 1)) {
        struct pt_str v = h->v[i].value;
        size_t a = 0;
        while (a <= v.len && nlisted < 16) {
            size_t b = a;
            while (b < v.len && v.ptr[b] != ',')
                b++;
            struct pt_str item = pt_str_trim((struct pt_str){v.ptr + a, b - a});
            if (item.len)
                listed[nlisted++] = item;
            a = b + 1;
        }
    }
    for (uint32_t i = 0; i < h->n;) {
        struct pt_str name = h->v[i].name;
        bool drop = false;
        for (size_t k = 0; k < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]) && !drop; k++)
            drop = pt_str_eq(name, hop_by_hop[k]);
        if (!drop && pt_str_eq(name, PT_STR("te")))
            drop = !(keep_te_trailers &&
                     pt_str_eq_nocase(pt_str_trim(h->v[i].value), PT_STR("trailers")));
        for (size_t k = 0; k < nlisted && !drop; k++)
            drop = pt_str_eq_nocase(name, listed[k]) && !pt_str_eq(name, PT_STR("te"));
        if (drop)
            pt_headers_remove_at(h, i);
        else
            i++;
    }
}

/* --- plugin ABI ---------------------------------------------------------- */

size_t pt_headers_count(const struct pt_headers *h)
{
    return h->n;
}

void pt_headers_at(const struct pt_headers *h, size_t i, struct pt_str *name, struct pt_str *value)
{
    if (i >= h->n) {
        *name = *value = PT_STR_NULL;
        return;
    }
    *name = h->v[i].name;
    *value = h->v[i].value;
}

/* Stored names are lower case; name may be in any case and any length. */
static int index_any_case(const struct pt_headers *h, struct pt_str name, uint32_t from)
{
    for (uint32_t i = from; i < h->n; i++) {
        struct pt_str n = h->v[i].name;
        if (n.len != name.len)
            continue;
        size_t k = 0;
        while (k < n.len && n.ptr[k] == pt_ascii_lower(name.ptr[k]))
            k++;
        if (k == n.len)
            return (int)i;
    }
    return -1;
}

bool pt_headers_find(const struct pt_headers *h, struct pt_str name, struct pt_str *value)
{
    int i = index_any_case(h, name, 0);
    if (i < 0)
        return false;
    if (value)
        *value = h->v[i].value;
    return true;
}

int pt_headers_add(struct pt_headers *h, struct pt_str name, struct pt_str value)
{
    if (!pt_http_is_token(name) || !pt_http_is_field_value(value))
        return PT_ERR_BAD_REQUEST;
    char *n = pt_arena_alloc(h->arena, name.len + value.len + 1);
    if (!n)
        return PT_ERR_LIMIT;
    for (size_t i = 0; i < name.len; i++)
        n[i] = pt_ascii_lower(name.ptr[i]);
    memcpy(n + name.len, value.ptr, value.len);
    n[name.len + value.len] = '\0';
    return pt_headers_add_ref(h, (struct pt_str){n, name.len},
                              (struct pt_str){n + name.len, value.len});
}

size_t pt_headers_remove(struct pt_headers *h, struct pt_str name)
{
    size_t removed = 0;
    for (int i = index_any_case(h, name, 0); i >= 0; i = index_any_case(h, name, (uint32_t)i)) {
        pt_headers_remove_at(h, (uint32_t)i);
        removed++;
    }
    return removed;
}

int pt_headers_set(struct pt_headers *h, struct pt_str name, struct pt_str value)
{
    if (!pt_http_is_token(name) || !pt_http_is_field_value(value))
        return PT_ERR_BAD_REQUEST;
    pt_headers_remove(h, name);
    return pt_headers_add(h, name, value);
}
