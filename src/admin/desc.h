/*
 * admin/desc.h - the descriptor index behind server reflection.
 *
 * Built once from a serialized FileDescriptorSet (pt_descriptor_set, exactly
 * as protoc wrote it). Each file keeps its serialized FileDescriptorProto
 * bytes verbatim - reflection must hand clients the bytes protoc produced,
 * not a re-encoding - plus a decoded copy used to list what it declares:
 *
 *   FileDescriptorSet ──split (field 1, by hand)──> file bytes ──unpack──> symbols
 *        (borrowed)                                   (borrowed)          extensions
 *
 * Symbols are fully-qualified names without the leading dot: packages'
 * messages (nested too), enums, services, service methods
 * ("pkg.Svc.Method") and extensions. Extensions are also kept by
 * (extendee, number).
 *
 * pt_admin_reflect_answer() is the whole ServerReflectionInfo exchange for
 * one request message, sans I/O: request bytes in, response bytes out. v1
 * and v1alpha have the same wire format, so one implementation serves both.
 *
 * Thread: immutable after pt_admin_desc_new(); any thread may read it.
 */
#ifndef PT_ADMIN_DESC_H
#define PT_ADMIN_DESC_H

#include <stddef.h>
#include <stdint.h>

struct pt_admin_desc;

/* Pointer: the index, or NULL with a reason in err. `set` must outlive it. */
struct pt_admin_desc *pt_admin_desc_new(const uint8_t *set, size_t len, char *err, size_t errlen);
void pt_admin_desc_free(struct pt_admin_desc *d); /* NULL ok */

size_t pt_admin_desc_file_count(const struct pt_admin_desc *d);
/* Pointer, borrowed: the file's name ("google/api/http.proto"). */
const char *pt_admin_desc_file_name(const struct pt_admin_desc *d, size_t file);
/* Pointer, borrowed: the file's serialized FileDescriptorProto as in the set. */
const uint8_t *pt_admin_desc_file_bytes(const struct pt_admin_desc *d, size_t file, size_t *len);

/* Status: 0 and *file set, or PT_ERR_NOT_FOUND. */
int pt_admin_desc_find_file(const struct pt_admin_desc *d, const char *name, size_t *file);
int pt_admin_desc_find_symbol(const struct pt_admin_desc *d, const char *symbol, size_t *file);
int pt_admin_desc_find_extension(const struct pt_admin_desc *d, const char *extendee,
                                 int32_t number, size_t *file);
/* Status: 0 with the extension numbers of message `type` (callee-owned array
 * in *out, free() it; *n may be 0), or PT_ERR_NOT_FOUND when no message has
 * that name. */
int pt_admin_desc_extension_numbers(const struct pt_admin_desc *d, const char *type, int32_t **out,
                                    size_t *n);

/* The file and its transitive dependencies, file first, each once, in
 * out[] (callee-allocated, free()); returns the count. */
size_t pt_admin_desc_closure(const struct pt_admin_desc *d, size_t file, size_t **out);

/*
 * Answer one ServerReflectionRequest. `services` (n of them) is what
 * list_services reports. Pointer: malloc'd serialized
 * ServerReflectionResponse in *out (length *outlen); NULL when the request
 * bytes do not parse (the caller fails the call with INVALID_ARGUMENT).
 */
uint8_t *pt_admin_reflect_answer(const struct pt_admin_desc *d, const char *const *services,
                                 size_t n, const uint8_t *req, size_t reqlen, size_t *outlen);

#endif
