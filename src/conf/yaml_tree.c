/*
 * libyaml events -> pt_conf_ynode tree.
 *
 * We use the event API rather than yaml_parser_load() so the nesting depth
 * and the node count are bounded while parsing, before a hostile document
 * can make libyaml build millions of nodes. Aliases are kept as pointers to
 * the anchored node; expansion (and its cost) happens in the loader, which
 * counts visits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "conf/conf_int.h"
#include "core/arena.h"
#include "portico/errors.h"

#define TAG_PREFIX "tag:yaml.org,2002:"
#define TAG_SEQ TAG_PREFIX "seq"
#define TAG_MAP TAG_PREFIX "map"

struct anchor {
    const char *name; /* arena */
    struct pt_conf_ynode *node;
};

struct frame {
    struct pt_conf_ynode *node;
    const char *anchor; /* registered when the collection ends */
    size_t first;       /* index of its first child in builder.stack */
};

struct builder {
    struct pt_conf_ytree *t;
    const char *name;
    const char *text;
    size_t len;
    struct pt_diag *diag;
    struct frame frames[PT_CONF_MAX_DEPTH];
    size_t depth;
    /* Children of every open collection, innermost last. */
    struct pt_conf_ynode **stack;
    size_t nstack, capstack;
    struct anchor *anchors; /* open addressing; cap is a power of two */
    size_t nanchors, capanchors;
    size_t nodes;
};

static void fail_at(struct builder *b, size_t line0, size_t col0, const char *fmt, const char *arg)
{
    char where[512];
    snprintf(where, sizeof(where), "%s:%zu:%zu", b->name, line0 + 1, col0 + 1);
    pt_diag_addf(b->diag, where, NULL, fmt, arg);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct anchor *anchor_slot(struct anchor *tab, size_t cap, const char *name)
{
    size_t i = (size_t)hash_str(name) & (cap - 1);
    while (tab[i].name && strcmp(tab[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* YAML allows redefining an anchor; later aliases see the latest node. */
static void anchor_set(struct builder *b, const char *name, struct pt_conf_ynode *node)
{
    if ((b->nanchors + 1) * 2 > b->capanchors) {
        size_t cap = b->capanchors ? b->capanchors * 2 : 64;
        struct anchor *tab = pt_xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < b->capanchors; i++)
            if (b->anchors[i].name)
                *anchor_slot(tab, cap, b->anchors[i].name) = b->anchors[i];
        free(b->anchors);
        b->anchors = tab;
        b->capanchors = cap;
    }
    struct anchor *a = anchor_slot(b->anchors, b->capanchors, name);
    if (!a->name) {
        a->name = name;
        b->nanchors++;
    }
    a->node = node;
}

static struct pt_conf_ynode *anchor_get(const struct builder *b, const char *name)
{
    if (!b->capanchors)
        return NULL;
    return anchor_slot(b->anchors, b->capanchors, name)->node;
}

static struct pt_conf_ynode *node_new(struct builder *b, enum pt_conf_ynode_kind kind,
                                      const yaml_event_t *ev)
{
    if (++b->nodes > PT_CONF_MAX_NODES) {
        fail_at(b, ev->start_mark.line, ev->start_mark.column, "%s",
                "document has more than 1000000 nodes");
        return NULL;
    }
    struct pt_conf_ynode *n = pt_arena_alloc(&b->t->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = (uint32_t)(ev->start_mark.line + 1);
    n->col = (uint32_t)(ev->start_mark.column + 1);
    n->expanded = 1;
    return n;
}

static size_t add_saturating(size_t a, size_t b)
{
    size_t sum = a + b;
    return sum < a || sum > PT_CONF_MAX_NODES ? PT_CONF_MAX_NODES + 1 : sum;
}

static void push_child(struct builder *b, struct pt_conf_ynode *n)
{
    if (b->depth == 0) {
        b->t->root = n;
        return;
    }
    if (b->nstack == b->capstack) {
        b->capstack = b->capstack ? b->capstack * 2 : 256;
        b->stack = pt_xrealloc(b->stack, b->capstack * sizeof(*b->stack));
    }
    b->stack[b->nstack++] = n;
}

static const char *copy_str(struct builder *b, const unsigned char *s)
{
    return s ? pt_arena_strndup(&b->t->arena, (const char *)s, strlen((const char *)s)) : NULL;
}

/* "!" and !!str make a scalar a string; the other core-schema tags keep
 * the scalar's usual resolution (the loader checks it against the field
 * type anyway). Anything else is an application tag we cannot honour. */
static bool scalar_tag_known(const char *tag, bool *plain)
{
    static const char *const resolved[] = {TAG_PREFIX "int", TAG_PREFIX "float", TAG_PREFIX "bool",
                                           TAG_PREFIX "null", NULL};
    if (strcmp(tag, "!") == 0 || strcmp(tag, TAG_PREFIX "str") == 0)
        return true;
    for (const char *const *r = resolved; *r; r++)
        if (strcmp(tag, *r) == 0) {
            *plain = true;
            return true;
        }
    return false;
}

/* For messages: "tag:yaml.org,2002:binary" is written !!binary. */
static const char *short_tag(struct builder *b, const char *tag)
{
    size_t plen = strlen(TAG_PREFIX);
    if (strncmp(tag, TAG_PREFIX, plen) == 0) {
        char buf[256];
        snprintf(buf, sizeof(buf), "!!%s", tag + plen);
        return pt_arena_strndup(&b->t->arena, buf, strlen(buf));
    }
    return pt_arena_strndup(&b->t->arena, tag, strlen(tag));
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    struct pt_conf_ynode *n = node_new(b, PT_CONF_YNODE_SCALAR, ev);
    if (!n)
        return PT_ERR_CONFIG;
    const char *tag = (const char *)ev->data.scalar.tag;
    n->str =
        pt_arena_strndup(&b->t->arena, (const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->len = ev->data.scalar.length;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
    if (tag && !scalar_tag_known(tag, &n->plain))
        n->bad_tag = short_tag(b, tag);
    if (ev->data.scalar.anchor)
        anchor_set(b, copy_str(b, ev->data.scalar.anchor), n);
    push_child(b, n);
    return 0;
}

static int on_start(struct builder *b, const yaml_event_t *ev, enum pt_conf_ynode_kind kind)
{
    if (b->depth == PT_CONF_MAX_DEPTH) {
        fail_at(b, ev->start_mark.line, ev->start_mark.column, "%s",
                "nesting deeper than 64 levels");
        return PT_ERR_CONFIG;
    }
    struct pt_conf_ynode *n = node_new(b, kind, ev);
    if (!n)
        return PT_ERR_CONFIG;
    const unsigned char *tag, *anchor;
    if (kind == PT_CONF_YNODE_SEQ) {
        tag = ev->data.sequence_start.tag;
        anchor = ev->data.sequence_start.anchor;
    } else {
        tag = ev->data.mapping_start.tag;
        anchor = ev->data.mapping_start.anchor;
    }
    if (tag && strcmp((const char *)tag, kind == PT_CONF_YNODE_SEQ ? TAG_SEQ : TAG_MAP) != 0)
        n->bad_tag = short_tag(b, (const char *)tag);
    struct frame *f = &b->frames[b->depth++];
    f->node = n;
    f->anchor = copy_str(b, anchor);
    f->first = b->nstack;
    return 0;
}

static int on_end(struct builder *b)
{
    struct frame *f = &b->frames[--b->depth];
    struct pt_conf_ynode *n = f->node;
    size_t count = b->nstack - f->first;
    struct pt_conf_ynode **kids = b->stack + f->first;
    if (n->kind == PT_CONF_YNODE_SEQ) {
        n->n = count;
        n->items = pt_arena_alloc(&b->t->arena, (count ? count : 1) * sizeof(*n->items));
        if (count)
            memcpy(n->items, kids, count * sizeof(*n->items));
    } else {
        /* libyaml always emits a value for every key (an empty scalar if
         * none was written), so count is even. */
        n->n = count / 2;
        n->pairs = pt_arena_alloc(&b->t->arena, (n->n ? n->n : 1) * sizeof(*n->pairs));
        for (size_t i = 0; i < n->n; i++)
            n->pairs[i] = (struct pt_conf_ypair){kids[2 * i], kids[2 * i + 1], false};
    }
    for (size_t i = 0; i < count; i++)
        n->expanded = add_saturating(n->expanded, kids[i]->expanded);
    b->nstack = f->first;
    if (n->expanded > PT_CONF_MAX_NODES) {
        fail_at(b, n->line - 1, n->col - 1, "%s",
                "this node expands to more than 1000000 nodes through aliases");
        return PT_ERR_CONFIG;
    }
    /* Registered only now, so an alias inside its own anchor's node is an
     * undefined alias rather than a cycle. */
    if (f->anchor)
        anchor_set(b, f->anchor, n);
    push_child(b, n);
    return 0;
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct pt_conf_ynode *target = anchor_get(b, name);
    if (!target) {
        fail_at(b, ev->start_mark.line, ev->start_mark.column,
                "alias *%s refers to no anchor defined before it", name);
        return PT_ERR_CONFIG;
    }
    struct pt_conf_ynode *n = node_new(b, PT_CONF_YNODE_ALIAS, ev);
    if (!n)
        return PT_ERR_CONFIG;
    n->target = target;
    n->expanded = target->expanded;
    push_child(b, n);
    return 0;
}

static void parser_error(struct builder *b, const yaml_parser_t *p)
{
    char msg[512];
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad encoding) carry a byte offset, not a mark. */
        size_t line = 0, col = 0;
        for (size_t i = 0; i < p->problem_offset && i < b->len; i++) {
            if (b->text[i] == '\n') {
                line++;
                col = 0;
            } else {
                col++;
            }
        }
        if (p->problem_value >= 0)
            snprintf(msg, sizeof(msg), "invalid YAML: %s (byte 0x%02x)", problem,
                     (unsigned)p->problem_value & 0xffu);
        else
            snprintf(msg, sizeof(msg), "invalid YAML: %s", problem);
        fail_at(b, line, col, "%s", msg);
        return;
    }
    if (p->context)
        snprintf(msg, sizeof(msg), "invalid YAML: %s (%s at line %zu, column %zu)", problem,
                 p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    else
        snprintf(msg, sizeof(msg), "invalid YAML: %s", problem);
    fail_at(b, p->problem_mark.line, p->problem_mark.column, "%s", msg);
}

static int handle(struct builder *b, const yaml_event_t *ev, unsigned *documents, bool *done)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1) {
            fail_at(b, ev->start_mark.line, ev->start_mark.column, "%s",
                    "a second YAML document; a configuration file holds exactly one");
            return PT_ERR_CONFIG;
        }
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, PT_CONF_YNODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, PT_CONF_YNODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    default:
        return 0;
    }
}

int pt_conf_ytree_parse(struct pt_conf_ytree *t, const char *name, const char *text, size_t len,
                        struct pt_diag *diag)
{
    pt_arena_init(&t->arena, NULL, 0);
    t->root = NULL;
    struct builder *b = pt_xcalloc(1, sizeof(*b));
    b->t = t;
    b->name = name;
    b->text = text;
    b->len = len;
    b->diag = diag;

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        pt_abort_oom(sizeof(p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    unsigned documents = 0;
    bool done = false;
    int rc = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.error == YAML_MEMORY_ERROR)
                pt_abort_oom(0);
            parser_error(b, &p);
            rc = PT_ERR_CONFIG;
            break;
        }
        rc = handle(b, &ev, &documents, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    free(b->stack);
    free(b->anchors);
    free(b);
    if (rc != 0)
        t->root = NULL;
    return rc;
}

void pt_conf_ytree_fini(struct pt_conf_ytree *t)
{
    pt_arena_fini(&t->arena);
    t->root = NULL;
}
