/*
 * Documents made from messages rather than text: the admin API builds a
 * Config from the store's objects and the instance's file, and compiles it
 * like a loaded file. Such a document has no source positions; errors name
 * fields by path only ("routes[3].service").
 */
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"
#include "core/arena.h"

struct pt_conf *pt_conf_from_message(const char *name, ProtobufCMessage *msg)
{
    struct pt_conf *c = pt_xcalloc(1, sizeof(*c));
    c->name = pt_xstrdup(name);
    c->msg = msg;
    return c;
}
