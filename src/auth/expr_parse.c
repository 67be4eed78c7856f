/*
 * auth/expr_parse.c - the rule compiler: lexer, recursive-descent parser,
 * static type checker, CIDR parsing, and the copy into one allocation.
 *
 * Grammar (lowest precedence first):
 *   rule    := or EOF
 *   or      := and ("||" and)*
 *   and     := unary ("&&" unary)*
 *   unary   := "!" unary | cmp
 *   cmp     := operand (("=="|"!="|"<"|"<="|">"|">="|"in") operand)?
 *   operand := STRING | INT | "true" | "false" | "[" STRING ("," STRING)* "]" | "[" "]"
 *            | "(" or ")" | NAME "(" args ")" | ROOT ("." SEGMENT | "[" STRING "]")*
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expr_int.h"
#include "core/arena.h"
#include "core/strutil.h"

#define NONE 0xFFFFu
/* Bounds of the scratch tables: every string, key or network takes at least
 * one byte of source, every network at least four. */
#define MAX_STRS PT_EXPR_MAX_SOURCE
#define MAX_CIDRS (PT_EXPR_MAX_SOURCE / 4 + 1)
#define MAX_ATTRS (PT_EXPR_MAX_SOURCE / 4 + 1)
#define MAX_ARGS 2 /* of every function but ip_in */

enum tk {
    TK_EOF = 0,
    TK_STRING,
    TK_INT,
    TK_IDENT,
    TK_DOT,
    TK_LBRACK,
    TK_RBRACK,
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_AND,
    TK_OR,
    TK_NOT,
    TK_IN,
};

struct tok {
    enum tk kind;
    size_t pos, len; /* in the source */
    int64_t i;       /* TK_INT */
    uint16_t str;    /* TK_STRING: index into strs */
};

struct span {
    uint32_t off, len; /* in the byte pool */
};

struct battr {
    enum pt_expr_root root;
    uint16_t key0, nkeys;
};

struct builder {
    struct pt_str src;
    size_t pos; /* lexer position: the end of cur */
    struct tok cur;
    char *err;
    size_t errlen;
    bool failed;
    unsigned depth;
    uint32_t uses;

    struct pt_expr_node nodes[PT_EXPR_MAX_NODES];
    uint32_t npos[PT_EXPR_MAX_NODES]; /* source offset of each node, for errors */
    size_t nnodes;
    uint16_t kids[PT_EXPR_MAX_NODES];
    size_t nkids;
    struct span strs[MAX_STRS];
    size_t nstrs;
    struct battr attrs[MAX_ATTRS];
    size_t nattrs;
    struct pt_expr_cidr cidrs[MAX_CIDRS];
    size_t ncidrs;
    char bytes[PT_EXPR_MAX_SOURCE];
    size_t nbytes;
};

static const char *const type_names[] = {"bool", "int", "string", "list", "claim"};

static void fail(struct builder *b, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct builder *b, size_t pos, const char *fmt, ...)
{
    if (b->failed)
        return;
    b->failed = true;
    b->cur.kind = TK_EOF; /* every loop of the parser ends at EOF */
    if (!b->err || b->errlen == 0)
        return;
    int n = snprintf(b->err, b->errlen, "col %zu: ", pos + 1);
    if (n < 0 || (size_t)n >= b->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + n, b->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* --- the byte pool and the string table -------------------------------- */

static bool pool_put(struct builder *b, const char *p, size_t n)
{
    if (n > sizeof(b->bytes) - b->nbytes) {
        fail(b, b->cur.pos, "rule too large");
        return false;
    }
    memcpy(b->bytes + b->nbytes, p, n);
    b->nbytes += n;
    return true;
}

/* Start a string at the end of the pool; returns its index or NONE. */
static uint16_t str_begin(struct builder *b, size_t pos)
{
    if (b->nstrs >= MAX_STRS) {
        fail(b, pos, "rule too large");
        return NONE;
    }
    b->strs[b->nstrs] = (struct span){(uint32_t)b->nbytes, 0};
    return (uint16_t)b->nstrs++;
}

static void str_end(struct builder *b, uint16_t s)
{
    b->strs[s].len = (uint32_t)(b->nbytes - b->strs[s].off);
}

static struct pt_str str_get(const struct builder *b, uint16_t s)
{
    return (struct pt_str){b->bytes + b->strs[s].off, b->strs[s].len};
}

/* --- lexer --------------------------------------------------------------- */

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_segment_char(char c)
{
    return is_ident_char(c) || c == '-';
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void put_utf8(struct builder *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    pool_put(b, u, n);
}

/* Four hex digits at p, or -1. */
static long hex4(struct builder *b, size_t p)
{
    if (b->src.len - p < 4)
        return -1;
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int d = pt_hex_value((unsigned char)b->src.ptr[p + i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* The string literal opening at b->pos (a '"'): decode into the pool. */
static void lex_string(struct builder *b, struct tok *t)
{
    const char *s = b->src.ptr;
    size_t p = b->pos + 1, n = b->src.len;
    uint16_t str = str_begin(b, b->pos);
    if (str == NONE)
        return;
    for (;;) {
        if (b->failed)
            return;
        if (p >= n) {
            fail(b, t->pos, "unterminated string");
            return;
        }
        unsigned char c = (unsigned char)s[p];
        if (c == '"')
            break;
        if (c < 0x20 || c == 0x7f) {
            fail(b, p, "control character in a string (write \\n or \\t)");
            return;
        }
        if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + p, n - p);
            if (l == 0) {
                fail(b, p, "invalid UTF-8 in a string");
                return;
            }
            pool_put(b, s + p, l);
            p += l;
            continue;
        }
        if (c != '\\') {
            pool_put(b, s + p, 1);
            p++;
            continue;
        }
        if (p + 1 >= n) {
            fail(b, t->pos, "unterminated string");
            return;
        }
        char e = s[p + 1];
        if (e == '"' || e == '\\') {
            pool_put(b, &e, 1);
            p += 2;
        } else if (e == 'n' || e == 't') {
            pool_put(b, e == 'n' ? "\n" : "\t", 1);
            p += 2;
        } else if (e == 'u') {
            long cp = hex4(b, p + 2);
            if (cp < 0) {
                fail(b, p, "\\u needs four hex digits");
                return;
            }
            size_t esc = p;
            p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                fail(b, esc, "unpaired surrogate \\u%04lX", (unsigned long)cp);
                return;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo = (p + 1 < n && s[p] == '\\' && s[p + 1] == 'u') ? hex4(b, p + 2) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    fail(b, esc, "unpaired surrogate \\u%04lX", (unsigned long)cp);
                    return;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            if (cp == 0) {
                fail(b, esc, "\\u0000 is not allowed in a string");
                return;
            }
            put_utf8(b, (unsigned)cp);
        } else if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f) {
            fail(b, p, "unknown escape '\\%c' (use \\\" \\\\ \\n \\t \\uXXXX)", e);
            return;
        } else {
            fail(b, p, "unknown escape in a string");
            return;
        }
    }
    str_end(b, str);
    t->kind = TK_STRING;
    t->str = str;
    b->pos = p + 1;
}

static void lex_int(struct builder *b, struct tok *t)
{
    const char *s = b->src.ptr;
    size_t p = b->pos, n = b->src.len;
    bool neg = s[p] == '-';
    if (neg)
        p++;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < n && s[p] >= '0' && s[p] <= '9'; p++) {
        unsigned d = (unsigned)(s[p] - '0');
        if (v > (lim - d) / 10) {
            fail(b, t->pos, "integer out of range");
            return;
        }
        v = v * 10 + d;
    }
    if (p < n && (is_ident_char(s[p]) || s[p] == '.')) {
        fail(b, t->pos, "malformed number");
        return;
    }
    t->kind = TK_INT;
    t->i = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    b->pos = p;
}

/* Lex the token after b->pos into b->cur. */
static void next(struct builder *b)
{
    const char *s = b->src.ptr;
    size_t n = b->src.len, p = b->pos;
    if (b->failed)
        return;
    while (p < n && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r'))
        p++;
    struct tok t = {.kind = TK_EOF, .pos = p};
    b->pos = p;
    if (p >= n) {
        b->cur = t;
        return;
    }
    char c = s[p], d = p + 1 < n ? s[p + 1] : '\0';
    size_t len = 1;
    switch (c) {
    case '"':
        lex_string(b, &t);
        break;
    case '.':
        t.kind = TK_DOT;
        break;
    case '[':
        t.kind = TK_LBRACK;
        break;
    case ']':
        t.kind = TK_RBRACK;
        break;
    case '(':
        t.kind = TK_LPAREN;
        break;
    case ')':
        t.kind = TK_RPAREN;
        break;
    case ',':
        t.kind = TK_COMMA;
        break;
    case '=':
        if (d != '=') {
            fail(b, p, "'=' is not an operator (use '==')");
            return;
        }
        t.kind = TK_EQ;
        len = 2;
        break;
    case '!':
        t.kind = d == '=' ? TK_NE : TK_NOT;
        len = d == '=' ? 2 : 1;
        break;
    case '<':
        t.kind = d == '=' ? TK_LE : TK_LT;
        len = d == '=' ? 2 : 1;
        break;
    case '>':
        t.kind = d == '=' ? TK_GE : TK_GT;
        len = d == '=' ? 2 : 1;
        break;
    case '&':
    case '|':
        if (d != c) {
            fail(b, p, "'%c' is not an operator (use '%c%c')", c, c, c);
            return;
        }
        t.kind = c == '&' ? TK_AND : TK_OR;
        len = 2;
        break;
    default:
        if ((c >= '0' && c <= '9') || (c == '-' && d >= '0' && d <= '9')) {
            lex_int(b, &t);
        } else if (is_ident_start(c)) {
            while (p + len < n && is_ident_char(s[p + len]))
                len++;
            t.kind = (len == 2 && memcmp(s + p, "in", 2) == 0) ? TK_IN : TK_IDENT;
        } else if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7f) {
            fail(b, p, "unexpected character '%c'", c);
            return;
        } else {
            fail(b, p, "unexpected byte 0x%02x", (unsigned char)c);
            return;
        }
    }
    if (b->failed)
        return;
    if (t.kind != TK_STRING && t.kind != TK_INT)
        b->pos = p + len;
    t.len = b->pos - t.pos;
    b->cur = t;
}

/* How the current token reads in an error message. */
static void describe(const struct builder *b, char *out, size_t cap)
{
    const struct tok *t = &b->cur;
    switch (t->kind) {
    case TK_EOF:
        snprintf(out, cap, "the end of the rule");
        break;
    case TK_STRING:
        snprintf(out, cap, "a string");
        break;
    case TK_INT:
        snprintf(out, cap, "a number");
        break;
    default:
        snprintf(out, cap, "'%.*s'", (int)(t->len > 32 ? 32 : t->len), b->src.ptr + t->pos);
    }
}

static bool expect(struct builder *b, enum tk kind, const char *what)
{
    if (b->failed)
        return false;
    if (b->cur.kind != kind) {
        char got[48];
        describe(b, got, sizeof(got));
        fail(b, b->cur.pos, "expected %s, got %s", what, got);
        return false;
    }
    next(b);
    return !b->failed;
}

/* --- nodes and types ----------------------------------------------------- */

static uint16_t node_new(struct builder *b, enum pt_expr_kind kind, uint8_t stype, size_t pos)
{
    if (b->failed)
        return NONE;
    if (b->nnodes >= PT_EXPR_MAX_NODES) {
        fail(b, pos, "rule has more than %d nodes", PT_EXPR_MAX_NODES);
        return NONE;
    }
    struct pt_expr_node *nd = &b->nodes[b->nnodes];
    memset(nd, 0, sizeof(*nd));
    nd->kind = (uint8_t)kind;
    nd->stype = stype;
    b->npos[b->nnodes] = (uint32_t)pos;
    return (uint16_t)b->nnodes++;
}

/* Append kids (each node has one parent, so nkids never passes nnodes). */
static uint16_t kids_put(struct builder *b, const uint16_t *k, size_t n)
{
    uint16_t first = (uint16_t)b->nkids;
    memcpy(b->kids + b->nkids, k, n * sizeof(*k));
    b->nkids += n;
    return first;
}

static enum pt_expr_stype stype_of(const struct builder *b, uint16_t nd)
{
    return (enum pt_expr_stype)b->nodes[nd].stype;
}

static bool check_type(struct builder *b, uint16_t nd, unsigned allowed, const char *what)
{
    enum pt_expr_stype t = stype_of(b, nd);
    if (allowed & (1u << t))
        return true;
    fail(b, b->npos[nd], "%s, got %s", what, type_names[t]);
    return false;
}

#define TB (1u << PT_EXPR_T_BOOL)
#define TI (1u << PT_EXPR_T_INT)
#define TS (1u << PT_EXPR_T_STRING)
#define TL (1u << PT_EXPR_T_LIST)
#define TD (1u << PT_EXPR_T_DYN)

static bool enter(struct builder *b, size_t pos)
{
    if (++b->depth > PT_EXPR_MAX_DEPTH) {
        fail(b, pos, "nesting deeper than %d", PT_EXPR_MAX_DEPTH);
        return false;
    }
    return true;
}

/* --- attributes ---------------------------------------------------------- */

static const struct {
    const char *name;
    enum pt_expr_root root;
} roots[] = {
    {"claims", PT_EXPR_ROOT_CLAIMS},   {"identity", PT_EXPR_ROOT_IDENTITY},
    {"path", PT_EXPR_ROOT_PATH},       {"header", PT_EXPR_ROOT_HEADER},
    {"headers", PT_EXPR_ROOT_HEADER},  {"query", PT_EXPR_ROOT_QUERY},
    {"request", PT_EXPR_ROOT_REQUEST}, {"client_ip", PT_EXPR_ROOT_CLIENT_IP},
};

static const struct {
    const char *name;
    enum pt_expr_stype stype;
} identity_fields[] = {
    {"subject", PT_EXPR_T_STRING}, {"client_id", PT_EXPR_T_STRING}, {"tier", PT_EXPR_T_STRING},
    {"method", PT_EXPR_T_STRING},  {"scopes", PT_EXPR_T_LIST},      {"roles", PT_EXPR_T_LIST},
};

static const char *const request_fields[] = {"method", "path", "host"};

static bool is_tchar(char c)
{
    return is_ident_char(c) || (c != '\0' && strchr("!#$%&'*+-.^`|~", c) != NULL);
}

/* One ".name" or ["name"] segment after a root; returns its string index. */
static uint16_t parse_segment(struct builder *b)
{
    size_t pos = b->cur.pos;
    uint16_t s;
    if (b->cur.kind == TK_DOT) {
        /* The name follows the dot directly; '-' is allowed (header.x-tenant). */
        size_t p = b->pos, end = p;
        while (end < b->src.len && is_segment_char(b->src.ptr[end]))
            end++;
        if (end == p) {
            fail(b, p, "expected a name after '.'");
            return NONE;
        }
        s = str_begin(b, p);
        if (s == NONE || !pool_put(b, b->src.ptr + p, end - p))
            return NONE;
        str_end(b, s);
        b->pos = end;
        next(b);
    } else {
        next(b);
        if (b->cur.kind != TK_STRING) {
            expect(b, TK_STRING, "a quoted name after '['");
            return NONE;
        }
        s = b->cur.str;
        next(b);
        if (!expect(b, TK_RBRACK, "']'"))
            return NONE;
    }
    if (b->failed)
        return NONE;
    if (b->strs[s].len == 0) {
        fail(b, pos, "empty attribute name");
        return NONE;
    }
    if (b->strs[s].len > PT_EXPR_MAX_KEY_LEN) {
        fail(b, pos, "attribute name longer than %d bytes", PT_EXPR_MAX_KEY_LEN);
        return NONE;
    }
    return s;
}

/* Check the keys of a root; returns the static type, or -1 after fail(). */
static int attr_check(struct builder *b, enum pt_expr_root root, const char *rname, uint16_t key0,
                      size_t nkeys, size_t pos)
{
    if (root == PT_EXPR_ROOT_CLIENT_IP)
        return PT_EXPR_T_STRING; /* the parser allows it no keys */
    if (nkeys == 0) {
        fail(b, pos, "'%s' needs a field (%s.<name>)", rname, rname);
        return -1;
    }
    if (root == PT_EXPR_ROOT_CLAIMS)
        return PT_EXPR_T_DYN;
    if (nkeys > 1) {
        fail(b, pos, "'%s' takes one field", rname);
        return -1;
    }
    struct pt_str k = str_get(b, key0);
    if (root == PT_EXPR_ROOT_IDENTITY) {
        for (size_t i = 0; i < sizeof(identity_fields) / sizeof(identity_fields[0]); i++)
            if (pt_str_eq(k, pt_str_from_cstr(identity_fields[i].name)))
                return identity_fields[i].stype;
        fail(b, pos,
             "unknown field identity.%.*s (expected subject, client_id, tier, method, scopes or "
             "roles)",
             (int)(k.len > 64 ? 64 : k.len), k.ptr);
        return -1;
    }
    if (root == PT_EXPR_ROOT_REQUEST) {
        for (size_t i = 0; i < sizeof(request_fields) / sizeof(request_fields[0]); i++)
            if (pt_str_eq(k, pt_str_from_cstr(request_fields[i])))
                return PT_EXPR_T_STRING;
        fail(b, pos, "unknown field request.%.*s (expected method, path or host)",
             (int)(k.len > 64 ? 64 : k.len), k.ptr);
        return -1;
    }
    if (root == PT_EXPR_ROOT_HEADER) {
        /* Header names are tokens, looked up case-insensitively: store lower case. */
        char *p = b->bytes + b->strs[key0].off;
        for (size_t i = 0; i < k.len; i++) {
            if (!is_tchar(p[i])) {
                fail(b, pos, "invalid header name");
                return -1;
            }
            p[i] = pt_ascii_lower(p[i]);
        }
    }
    return PT_EXPR_T_STRING;
}

/* Index of an equal attribute already in the table, or a new one. */
static uint16_t attr_intern(struct builder *b, enum pt_expr_root root, uint16_t key0, size_t nkeys,
                            size_t pos)
{
    for (size_t i = 0; i < b->nattrs; i++) {
        const struct battr *a = &b->attrs[i];
        if (a->root != root || a->nkeys != nkeys)
            continue;
        size_t k = 0;
        while (k < nkeys &&
               pt_str_eq(str_get(b, (uint16_t)(a->key0 + k)), str_get(b, (uint16_t)(key0 + k))))
            k++;
        if (k == nkeys)
            return (uint16_t)i;
    }
    if (b->nattrs >= MAX_ATTRS) {
        fail(b, pos, "rule too large");
        return NONE;
    }
    b->attrs[b->nattrs] = (struct battr){root, key0, (uint16_t)nkeys};
    b->uses |= 1u << root;
    return (uint16_t)b->nattrs++;
}

/* cur is the root's name (already known to be a root). */
static uint16_t parse_attr(struct builder *b, enum pt_expr_root root)
{
    size_t pos = b->cur.pos;
    char rname[16];
    snprintf(rname, sizeof(rname), "%.*s", (int)b->cur.len, b->src.ptr + pos);
    next(b);
    uint16_t keys[PT_EXPR_MAX_KEYS];
    size_t nkeys = 0;
    while (!b->failed && (b->cur.kind == TK_DOT || b->cur.kind == TK_LBRACK)) {
        if (root == PT_EXPR_ROOT_CLIENT_IP) {
            fail(b, b->cur.pos, "client_ip has no fields");
            return NONE;
        }
        if (nkeys == PT_EXPR_MAX_KEYS) {
            fail(b, b->cur.pos, "attribute path longer than %d names", PT_EXPR_MAX_KEYS);
            return NONE;
        }
        uint16_t s = parse_segment(b);
        if (s == NONE)
            return NONE;
        keys[nkeys++] = s;
    }
    if (b->failed)
        return NONE;
    /* Keys must be consecutive in the string table for the attribute view:
     * segments parsed from brackets were added as tokens, so copy them. */
    uint16_t key0 = (uint16_t)b->nstrs;
    for (size_t i = 0; i < nkeys; i++) {
        if (b->nstrs >= MAX_STRS) {
            fail(b, pos, "rule too large");
            return NONE;
        }
        b->strs[b->nstrs++] = b->strs[keys[i]];
    }
    int stype = attr_check(b, root, rname, key0, nkeys, pos);
    if (stype < 0)
        return NONE;
    uint16_t a = attr_intern(b, root, key0, nkeys, pos);
    if (a == NONE)
        return NONE;
    uint16_t nd = node_new(b, PT_EXPR_N_ATTR, (uint8_t)stype, pos);
    if (nd != NONE)
        b->nodes[nd].a = a;
    return nd;
}

/* --- networks ------------------------------------------------------------ */

bool pt_expr_addr_parse(struct pt_str s, uint8_t out[16], bool *v4)
{
    char buf[INET6_ADDRSTRLEN];
    if (s.len == 0 || s.len >= sizeof(buf) || memchr(s.ptr, '\0', s.len))
        return false;
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memchr(s.ptr, ':', s.len)) {
        if (inet_pton(AF_INET6, buf, out) != 1)
            return false;
        *v4 = memcmp(out, mapped, sizeof(mapped)) == 0;
        if (*v4) {
            memmove(out, out + 12, 4);
            memset(out + 4, 0, 12);
        }
        return true;
    }
    memset(out, 0, 16);
    *v4 = true;
    return inet_pton(AF_INET, buf, out) == 1;
}

static bool parse_cidr(struct builder *b, struct pt_str s, size_t pos, struct pt_expr_cidr *c)
{
    int shown = (int)(s.len > 64 ? 64 : s.len);
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] <= 0x20 || (unsigned char)s.ptr[i] >= 0x7f) {
            fail(b, pos, "not an IP network (\"10.0.0.0/8\", \"2001:db8::/32\")");
            return false;
        }
    const char *slash = memchr(s.ptr, '/', s.len);
    struct pt_str addr = {s.ptr, slash ? (size_t)(slash - s.ptr) : s.len};
    bool written_v6 = memchr(addr.ptr, ':', addr.len) != NULL;
    if (!pt_expr_addr_parse(addr, c->addr, &c->v4)) {
        fail(b, pos, "'%.*s' is not an IP network (\"10.0.0.0/8\", \"2001:db8::/32\")", shown,
             s.ptr);
        return false;
    }
    unsigned max = written_v6 ? 128 : 32, bits = max;
    if (slash) {
        size_t digits = s.len - addr.len - 1;
        bool ok = digits >= 1 && digits <= 3;
        bits = 0;
        for (size_t i = 0; ok && i < digits; i++) {
            ok = slash[1 + i] >= '0' && slash[1 + i] <= '9';
            bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
        }
        if (!ok || bits > max) {
            fail(b, pos, "'%.*s': the prefix length must be 0 to %u", shown, s.ptr, max);
            return false;
        }
    }
    if (written_v6 && c->v4) {
        /* ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96); a shorter
         * prefix reaches beyond the mapped range, so it stays IPv6. */
        if (bits >= 96) {
            bits -= 96;
        } else {
            memmove(c->addr + 12, c->addr, 4);
            memset(c->addr, 0, 12);
            c->addr[10] = c->addr[11] = 0xff;
            c->v4 = false;
        }
    }
    c->bits = (uint8_t)bits;
    for (size_t i = 0; i < (c->v4 ? 4u : 16u); i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : (bits > 8 * i ? bits - 8 * (unsigned)i : 0);
        uint8_t mask = (uint8_t)(keep ? 0xffu << (8 - keep) : 0);
        if (c->addr[i] & (uint8_t)~mask) {
            fail(b, pos, "'%.*s' has address bits set beyond its prefix length", shown, s.ptr);
            return false;
        }
    }
    return true;
}

/* --- expressions --------------------------------------------------------- */

static uint16_t parse_or(struct builder *b);

static const struct {
    const char *name;
    enum pt_expr_fn fn;
    unsigned nargs;
} functions[] = {
    {"starts_with", PT_EXPR_FN_STARTS_WITH, 2},
    {"ends_with", PT_EXPR_FN_ENDS_WITH, 2},
    {"contains", PT_EXPR_FN_CONTAINS, 2},
    {"exists", PT_EXPR_FN_EXISTS, 1},
    {"size", PT_EXPR_FN_SIZE, 1},
    {"ip_in", PT_EXPR_FN_IP_IN, 0},
    {"any_in", PT_EXPR_FN_ANY_IN, 2},
    {"all_in", PT_EXPR_FN_ALL_IN, 2},
};

static bool check_args(struct builder *b, enum pt_expr_fn fn, const char *name,
                       const uint16_t *args)
{
    char what[64];
    switch (fn) {
    case PT_EXPR_FN_STARTS_WITH:
    case PT_EXPR_FN_ENDS_WITH:
        snprintf(what, sizeof(what), "%s() takes strings", name);
        return check_type(b, args[0], TS | TD, what) && check_type(b, args[1], TS | TD, what);
    case PT_EXPR_FN_CONTAINS:
        return check_type(b, args[0], TS | TL | TD, "contains() searches a string or a list") &&
               check_type(b, args[1], TS | TD, "contains() looks for a string");
    case PT_EXPR_FN_EXISTS:
        if (b->nodes[args[0]].kind != PT_EXPR_N_ATTR) {
            fail(b, b->npos[args[0]], "exists() takes an attribute (exists(claims.email))");
            return false;
        }
        return true;
    case PT_EXPR_FN_SIZE:
        return check_type(b, args[0], TS | TL | TD, "size() takes a string or a list");
    case PT_EXPR_FN_ANY_IN:
    case PT_EXPR_FN_ALL_IN:
        snprintf(what, sizeof(what), "%s() takes two lists", name);
        return check_type(b, args[0], TL | TD, what) && check_type(b, args[1], TL | TD, what);
    case PT_EXPR_FN_IP_IN:
        break;
    }
    return true;
}

/* ip_in(address, "network", ...): cur is the first token after '('. */
static uint16_t parse_ip_in(struct builder *b, size_t pos)
{
    uint16_t addr = parse_or(b);
    if (addr == NONE || !check_type(b, addr, TS | TD, "ip_in() takes an address string first"))
        return NONE;
    uint16_t first = (uint16_t)b->ncidrs;
    size_t n = 0;
    while (b->cur.kind == TK_COMMA) {
        next(b);
        if (b->cur.kind != TK_STRING) {
            fail(b, b->cur.pos, "ip_in() networks must be string literals (\"10.0.0.0/8\")");
            return NONE;
        }
        if (n == PT_EXPR_MAX_CIDRS) {
            fail(b, b->cur.pos, "ip_in() takes at most %d networks", PT_EXPR_MAX_CIDRS);
            return NONE;
        }
        if (b->ncidrs >= MAX_CIDRS) {
            fail(b, b->cur.pos, "rule too large");
            return NONE;
        }
        if (!parse_cidr(b, str_get(b, b->cur.str), b->cur.pos, &b->cidrs[b->ncidrs]))
            return NONE;
        b->ncidrs++;
        n++;
        next(b);
    }
    if (b->failed)
        return NONE;
    if (n == 0) {
        fail(b, pos, "ip_in() needs at least one network (ip_in(client_ip, \"10.0.0.0/8\"))");
        return NONE;
    }
    if (!expect(b, TK_RPAREN, "',' or ')'"))
        return NONE;
    uint16_t nd = node_new(b, PT_EXPR_N_CALL, PT_EXPR_T_BOOL, pos);
    if (nd == NONE)
        return NONE;
    b->nodes[nd].op = PT_EXPR_FN_IP_IN;
    b->nodes[nd].a = kids_put(b, &addr, 1);
    b->nodes[nd].n = 1;
    b->nodes[nd].c = first;
    b->nodes[nd].cn = (uint16_t)n;
    return nd;
}

/* cur is the function's name, followed by '('. */
static uint16_t parse_call(struct builder *b)
{
    size_t pos = b->cur.pos, i;
    struct pt_str name = {b->src.ptr + pos, b->cur.len};
    for (i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
        if (pt_str_eq(name, pt_str_from_cstr(functions[i].name)))
            break;
    if (i == sizeof(functions) / sizeof(functions[0])) {
        fail(b, pos,
             "unknown function '%.*s' (expected starts_with, ends_with, contains, exists, size, "
             "ip_in, any_in or all_in)",
             (int)(name.len > 32 ? 32 : name.len), name.ptr);
        return NONE;
    }
    if (!enter(b, pos))
        return NONE;
    next(b); /* the name */
    next(b); /* '(' */
    uint16_t nd;
    if (functions[i].fn == PT_EXPR_FN_IP_IN) {
        nd = parse_ip_in(b, pos);
    } else {
        uint16_t args[MAX_ARGS];
        unsigned n = 0, want = functions[i].nargs;
        if (b->cur.kind != TK_RPAREN) {
            for (;;) {
                if (n == want) {
                    fail(b, b->cur.pos, "%s() takes %u argument%s", functions[i].name, want,
                         want == 1 ? "" : "s");
                    return NONE;
                }
                args[n] = parse_or(b);
                if (args[n] == NONE)
                    return NONE;
                n++;
                if (b->cur.kind != TK_COMMA)
                    break;
                next(b);
            }
        }
        if (!expect(b, TK_RPAREN, "',' or ')'"))
            return NONE;
        if (n != want) {
            fail(b, pos, "%s() takes %u argument%s, got %u", functions[i].name, want,
                 want == 1 ? "" : "s", n);
            return NONE;
        }
        if (!check_args(b, functions[i].fn, functions[i].name, args))
            return NONE;
        nd = node_new(b, PT_EXPR_N_CALL,
                      functions[i].fn == PT_EXPR_FN_SIZE ? PT_EXPR_T_INT : PT_EXPR_T_BOOL, pos);
        if (nd == NONE)
            return NONE;
        b->nodes[nd].op = (uint8_t)functions[i].fn;
        b->nodes[nd].a = kids_put(b, args, n);
        b->nodes[nd].n = (uint16_t)n;
    }
    b->depth--;
    return nd;
}

static uint16_t parse_list(struct builder *b)
{
    size_t pos = b->cur.pos;
    uint16_t first = (uint16_t)b->nstrs; /* the next string token's slot */
    next(b);
    size_t n = 0;
    if (b->cur.kind != TK_RBRACK) {
        for (;;) {
            if (b->cur.kind != TK_STRING) {
                if (!b->failed)
                    fail(b, b->cur.pos, "list items must be string literals");
                return NONE;
            }
            if (n == PT_EXPR_MAX_LIST) {
                fail(b, b->cur.pos, "list literal longer than %d items", PT_EXPR_MAX_LIST);
                return NONE;
            }
            /* String tokens take consecutive table slots unless an error intervened. */
            if (b->cur.str != first + n) {
                fail(b, b->cur.pos, "rule too large");
                return NONE;
            }
            n++;
            next(b);
            if (b->cur.kind != TK_COMMA)
                break;
            next(b);
        }
    }
    if (!expect(b, TK_RBRACK, "',' or ']'"))
        return NONE;
    uint16_t nd = node_new(b, PT_EXPR_N_LIST, PT_EXPR_T_LIST, pos);
    if (nd != NONE) {
        b->nodes[nd].a = first;
        b->nodes[nd].n = (uint16_t)n;
    }
    return nd;
}

static uint16_t parse_operand(struct builder *b)
{
    if (b->failed)
        return NONE;
    struct tok t = b->cur;
    uint16_t nd;
    switch (t.kind) {
    case TK_STRING:
        nd = node_new(b, PT_EXPR_N_STRING, PT_EXPR_T_STRING, t.pos);
        if (nd != NONE)
            b->nodes[nd].a = t.str;
        next(b);
        return nd;
    case TK_INT:
        nd = node_new(b, PT_EXPR_N_INT, PT_EXPR_T_INT, t.pos);
        if (nd != NONE)
            b->nodes[nd].i = t.i;
        next(b);
        return nd;
    case TK_LBRACK:
        return parse_list(b);
    case TK_LPAREN:
        if (!enter(b, t.pos))
            return NONE;
        next(b);
        nd = parse_or(b);
        if (nd == NONE || !expect(b, TK_RPAREN, "')'"))
            return NONE;
        b->depth--;
        return nd;
    case TK_IDENT: {
        struct pt_str name = {b->src.ptr + t.pos, t.len};
        if (pt_str_eq(name, PT_STR("true")) || pt_str_eq(name, PT_STR("false"))) {
            nd = node_new(b, PT_EXPR_N_BOOL, PT_EXPR_T_BOOL, t.pos);
            if (nd != NONE)
                b->nodes[nd].i = name.len == 4;
            next(b);
            return nd;
        }
        /* A name directly followed by '(' is a call. */
        size_t p = b->pos;
        while (p < b->src.len && (b->src.ptr[p] == ' ' || b->src.ptr[p] == '\t' ||
                                  b->src.ptr[p] == '\n' || b->src.ptr[p] == '\r'))
            p++;
        if (p < b->src.len && b->src.ptr[p] == '(')
            return parse_call(b);
        for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
            if (pt_str_eq(name, pt_str_from_cstr(roots[i].name)))
                return parse_attr(b, roots[i].root);
        fail(b, t.pos,
             "unknown attribute '%.*s' (expected claims, identity, path, header, headers, query, "
             "request or client_ip)",
             (int)(t.len > 32 ? 32 : t.len), name.ptr);
        return NONE;
    }
    default: {
        char got[48];
        describe(b, got, sizeof(got));
        fail(b, t.pos, "expected a value, got %s", got);
        return NONE;
    }
    }
}

static bool is_cmp(enum tk k)
{
    return k == TK_EQ || k == TK_NE || k == TK_LT || k == TK_LE || k == TK_GT || k == TK_GE ||
           k == TK_IN;
}

static uint16_t parse_cmp(struct builder *b)
{
    uint16_t l = parse_operand(b);
    if (l == NONE || !is_cmp(b->cur.kind))
        return l;
    struct tok op = b->cur;
    char opname[4];
    snprintf(opname, sizeof(opname), "%.*s", (int)op.len, b->src.ptr + op.pos);
    next(b);
    uint16_t r = parse_operand(b);
    if (r == NONE)
        return NONE;
    if (is_cmp(b->cur.kind)) {
        fail(b, b->cur.pos, "comparisons do not chain (join them with '&&')");
        return NONE;
    }
    enum pt_expr_stype lt = stype_of(b, l), rt = stype_of(b, r);
    if (op.kind == TK_IN) {
        if (lt == PT_EXPR_T_LIST) {
            fail(b, b->npos[l],
                 "'in' needs a string on the left (any_in() and all_in() compare "
                 "lists)");
            return NONE;
        }
        if (rt == PT_EXPR_T_STRING) {
            fail(b, b->npos[r], "'in' needs a list on the right (contains() finds a substring)");
            return NONE;
        }
        if (!check_type(b, l, TS | TD, "'in' needs a string on the left") ||
            !check_type(b, r, TL | TD, "'in' needs a list on the right"))
            return NONE;
    } else {
        if (op.kind != TK_EQ && op.kind != TK_NE) {
            char what[64];
            snprintf(what, sizeof(what), "'%s' compares integers or strings", opname);
            if (!check_type(b, l, TI | TS | TD, what) || !check_type(b, r, TI | TS | TD, what))
                return NONE;
        }
        if (lt != PT_EXPR_T_DYN && rt != PT_EXPR_T_DYN && lt != rt) {
            fail(b, op.pos, "cannot compare %s with %s", type_names[lt], type_names[rt]);
            return NONE;
        }
    }
    uint16_t nd =
        node_new(b, op.kind == TK_IN ? PT_EXPR_N_IN : PT_EXPR_N_CMP, PT_EXPR_T_BOOL, b->npos[l]);
    if (nd == NONE)
        return NONE;
    static const uint8_t cmp_ops[] = {[TK_EQ] = PT_EXPR_CMP_EQ,
                                      [TK_NE] = PT_EXPR_CMP_NE,
                                      [TK_LT] = PT_EXPR_CMP_LT,
                                      [TK_LE] = PT_EXPR_CMP_LE,
                                      [TK_GT] = PT_EXPR_CMP_GT,
                                      [TK_GE] = PT_EXPR_CMP_GE,
                                      [TK_IN] = 0};
    uint16_t k[2] = {l, r};
    b->nodes[nd].op = cmp_ops[op.kind];
    b->nodes[nd].a = kids_put(b, k, 2);
    b->nodes[nd].n = 2;
    return nd;
}

static uint16_t parse_unary(struct builder *b)
{
    if (b->cur.kind != TK_NOT)
        return parse_cmp(b);
    size_t pos = b->cur.pos;
    if (!enter(b, pos))
        return NONE;
    next(b);
    uint16_t k = parse_unary(b);
    if (k == NONE || !check_type(b, k, TB | TD, "'!' needs a boolean"))
        return NONE;
    b->depth--;
    uint16_t nd = node_new(b, PT_EXPR_N_NOT, PT_EXPR_T_BOOL, pos);
    if (nd != NONE) {
        b->nodes[nd].a = kids_put(b, &k, 1);
        b->nodes[nd].n = 1;
    }
    return nd;
}

/* a && b && c (or ||) as one node with n children. */
static uint16_t parse_chain(struct builder *b, enum tk op)
{
    const char *opname = op == TK_OR ? "'||'" : "'&&'";
    uint16_t (*sub)(struct builder *) = op == TK_OR ? NULL : parse_unary;
    uint16_t k[PT_EXPR_MAX_NODES];
    size_t n = 0;
    for (;;) {
        uint16_t x = sub ? sub(b) : parse_chain(b, TK_AND);
        if (x == NONE)
            return NONE;
        if (n == PT_EXPR_MAX_NODES) {
            fail(b, b->npos[x], "rule has more than %d nodes", PT_EXPR_MAX_NODES);
            return NONE;
        }
        k[n++] = x;
        if (b->cur.kind != op)
            break;
        next(b);
    }
    if (n == 1)
        return k[0];
    char what[48];
    snprintf(what, sizeof(what), "%s needs boolean operands", opname);
    for (size_t i = 0; i < n; i++)
        if (!check_type(b, k[i], TB | TD, what))
            return NONE;
    uint16_t nd =
        node_new(b, op == TK_OR ? PT_EXPR_N_OR : PT_EXPR_N_AND, PT_EXPR_T_BOOL, b->npos[k[0]]);
    if (nd != NONE) {
        b->nodes[nd].a = kids_put(b, k, n);
        b->nodes[nd].n = (uint16_t)n;
    }
    return nd;
}

static uint16_t parse_or(struct builder *b)
{
    return parse_chain(b, TK_OR);
}

/* --- the program ------------------------------------------------------- */

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static struct pt_expr *finish(const struct builder *b, uint16_t root)
{
    size_t o_nodes = align8(sizeof(struct pt_expr));
    size_t o_strs = align8(o_nodes + b->nnodes * sizeof(struct pt_expr_node));
    size_t o_attrs = align8(o_strs + b->nstrs * sizeof(struct pt_str));
    size_t o_cidrs = align8(o_attrs + b->nattrs * sizeof(struct pt_expr_attr));
    size_t o_kids = align8(o_cidrs + b->ncidrs * sizeof(struct pt_expr_cidr));
    size_t o_bytes = o_kids + b->nkids * sizeof(uint16_t);
    char *m = pt_xcalloc(1, o_bytes + b->nbytes + 1);
    struct pt_expr *e = (struct pt_expr *)m;
    struct pt_expr_node *nodes = (struct pt_expr_node *)(m + o_nodes);
    struct pt_str *strs = (struct pt_str *)(m + o_strs);
    struct pt_expr_attr *attrs = (struct pt_expr_attr *)(m + o_attrs);
    struct pt_expr_cidr *cidrs = (struct pt_expr_cidr *)(m + o_cidrs);
    uint16_t *kids = (uint16_t *)(m + o_kids);
    char *bytes = m + o_bytes;
    memcpy(nodes, b->nodes, b->nnodes * sizeof(*nodes));
    memcpy(kids, b->kids, b->nkids * sizeof(*kids));
    memcpy(cidrs, b->cidrs, b->ncidrs * sizeof(*cidrs));
    memcpy(bytes, b->bytes, b->nbytes);
    for (size_t i = 0; i < b->nstrs; i++)
        strs[i] = (struct pt_str){bytes + b->strs[i].off, b->strs[i].len};
    for (size_t i = 0; i < b->nattrs; i++)
        attrs[i] =
            (struct pt_expr_attr){b->attrs[i].root, strs + b->attrs[i].key0, b->attrs[i].nkeys};
    e->nodes = nodes;
    e->kids = kids;
    e->strs = strs;
    e->attrs = attrs;
    e->cidrs = cidrs;
    e->nnodes = b->nnodes;
    e->nattrs = b->nattrs;
    e->root = root;
    e->uses = b->uses;
    return e;
}

struct pt_expr *pt_expr_compile(struct pt_str src, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    struct builder *b = pt_xcalloc(1, sizeof(*b));
    b->src = src;
    b->err = err;
    b->errlen = errlen;
    struct pt_expr *e = NULL;
    if (src.len > PT_EXPR_MAX_SOURCE) {
        fail(b, PT_EXPR_MAX_SOURCE, "rule longer than %d bytes", PT_EXPR_MAX_SOURCE);
        goto out;
    }
    if (!src.ptr && src.len) {
        fail(b, 0, "no rule");
        goto out;
    }
    next(b);
    if (b->cur.kind == TK_EOF) {
        fail(b, b->cur.pos, "empty rule");
        goto out;
    }
    /* A lexing error in the lookahead leaves the node before it intact:
     * only b->failed says the whole rule is good. */
    uint16_t root = parse_or(b);
    if (root == NONE || b->failed)
        goto out;
    if (b->cur.kind != TK_EOF) {
        char got[48];
        describe(b, got, sizeof(got));
        fail(b, b->cur.pos, "unexpected %s after the expression", got);
        goto out;
    }
    if (!check_type(b, root, TB | TD, "a rule must be a boolean expression") || b->failed)
        goto out;
    e = finish(b, root);
out:
    free(b);
    return e;
}

void pt_expr_free(struct pt_expr *e)
{
    free(e);
}

bool pt_expr_uses(const struct pt_expr *e, enum pt_expr_root root)
{
    return e && (unsigned)root < PT_EXPR_ROOT_COUNT && (e->uses & (1u << root));
}

const struct pt_expr_attr *pt_expr_attrs(const struct pt_expr *e, size_t *n)
{
    *n = e ? e->nattrs : 0;
    return e ? e->attrs : NULL;
}
