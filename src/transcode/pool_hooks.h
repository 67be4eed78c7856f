/*
 * transcode/pool_hooks.h - the JSON codec's schema hooks answered by a
 * descriptor pool.
 *
 * The codec (json.h) works on any ProtobufCMessageDescriptor and asks its
 * hooks for what protobuf-c descriptors lack. For descriptors of a pool
 * (descpool.h) the pool knows the exact answers: each field's json_name
 * (protoc's, or the computed lowerCamelCase), whether a repeated message
 * field is a map (the entry type's map_entry option, not a guess from its
 * name), and every message type by full name (the type registry behind
 * google.protobuf.Any).
 *
 * Descriptors that do not come from the pool (generated code) get the
 * codec's defaults, so one set of hooks serves both.
 *
 * Thread: the hooks read the immutable pool; any thread. The pool must
 * outlive every codec call made with the hooks (hold a reference).
 */
#ifndef PT_TRANSCODE_POOL_HOOKS_H
#define PT_TRANSCODE_POOL_HOOKS_H

#include "transcode/descpool.h"
#include "transcode/json.h"

/* Fill *out with hooks answered by pool (borrowed, not referenced). */
void pt_tc_pool_hooks(const struct pt_descpool *pool, struct pt_json_hooks *out);

#endif
